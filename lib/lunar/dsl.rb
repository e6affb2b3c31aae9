# frozen_string_literal: true

require "lunar/configuration"

module Lunar
  # The config file (`-C FILE`, or `config/lunar.rb` when present): Ruby, in Puma's style,
  # one method per command-line option. Flags given on the command line win over the file.
  #
  #   workers 2
  #   threads 0, 16                 # Puma's min, max: Lunar runs max
  #   bind "tcp://0.0.0.0:9292"
  #   ssl_bind "0.0.0.0", 9443, cert: "cert.pem", key: "key.pem"
  #   preload_app!
  #   before_fork { DB.disconnect }
  #   on_worker_boot { |index| DB.connect }
  #
  # An unknown option stops the boot with one line naming the file and the line.
  class DSL
    class Error < StandardError; end

    # Cluster-level settings (not Lunar::Server options): what the master needs.
    CLUSTER_KEYS = %i[workers preload_app worker_boot_timeout hooks].freeze

    # Reads `path`; returns `[options, binds, pid_file, rackup]`.
    def self.load(path)
      dsl = new(path)
      dsl.instance_eval(File.read(path), path, 1)
      [dsl.options, dsl.binds, dsl.pid_file, dsl.rackup_path]
    rescue Errno::ENOENT, Errno::EACCES => e
      raise Error, "cannot read config file #{path}: #{e.message}"
    rescue SyntaxError => e
      raise Error, "#{e.message.lines.first.strip} (config file)"
    rescue ArgumentError, TypeError, NameError => e # a bad value, or a typo outside an option
      line = e.backtrace_locations&.find { |l| l.path == path }&.lineno
      raise Error, "#{path}:#{line}: #{e.message}"
    end

    attr_reader :options, :binds, :pid_file, :rackup_path

    def initialize(path)
      @path = path
      @options = { hooks: Hash.new { |h, k| h[k] = [] } }
      @binds = []
    end

    # Listening
    def bind(uri) = @binds << uri.to_s

    def port(number, host = nil)
      @options[:port] = Integer(number)
      @options[:address] = host.to_s if host
    end

    def address(host) = @options[:address] = host.to_s

    def ssl_bind(host, port, opts = {})
      cert, key = opts.values_at(:cert, :key).zip(opts.values_at("cert", "key")).map { |a, b| a || b }
      raise_here("ssl_bind needs cert: and key:") unless cert && key

      @binds << "ssl://#{host}:#{Integer(port)}?cert=#{cert}&key=#{key}"
    end

    def ssl(flag = true) = @options[:ssl] = flag
    def ssl_cert_file(path) = @options[:ssl_cert] = path.to_s
    def ssl_key_file(path) = @options[:ssl_key] = path.to_s

    # Processes and threads
    def workers(count) = @options[:workers] = Integer(count)
    def threads(min, max = nil) = @options[:threads] = Integer(max || min)
    def io_threads(count) = @options[:io_threads] = Integer(count)
    def evented = @options[:mode] = :evented
    def threaded = @options[:mode] = :threaded
    def eventmachine(flag = true) = @options[:eventmachine] = flag
    def async(flag = true) = @options[:async] = flag
    def preload_app!(flag = true) = @options[:preload_app] = flag
    def worker_boot_timeout(seconds) = @options[:worker_boot_timeout] = Float(seconds)

    # Hooks (cluster mode): before_fork runs once in the master, before the first fork;
    # on_worker_boot and on_worker_shutdown in the worker, given its index.
    def before_fork(&block) = hook(:before_fork, block)
    def on_worker_boot(&block) = hook(:on_worker_boot, block)
    def on_worker_shutdown(&block) = hook(:on_worker_shutdown, block)

    # Limits and timeouts (sizes as Integers or "64k", "10m")
    def timeout(seconds) = @options[:timeout] = Float(seconds)
    def header_timeout(seconds) = @options[:header_timeout] = Float(seconds)
    def write_timeout(seconds) = @options[:write_timeout] = Float(seconds)
    def shutdown_timeout(seconds) = @options[:shutdown_timeout] = Float(seconds)
    def max_body(size) = @options[:max_body] = Configuration.parse_size(size)
    def max_header_size(size) = @options[:max_header_size] = Configuration.parse_size(size)
    def stream_buffer(size) = @options[:stream_buffer] = Configuration.parse_size(size)
    def connection_buffer(size) = @options[:connection_buffer] = Configuration.parse_size(size)
    def max_ws_message(size) = @options[:max_ws_message] = Configuration.parse_size(size)
    def max_conns(count) = @options[:max_conns] = Integer(count)
    def max_persistent_conns(count) = @options[:max_persistent_conns] = Integer(count)
    def queue(count) = @options[:queue_capacity] = Integer(count)

    # The rest
    def environment(name) = @options[:environment] = name.to_s
    def rackup(path) = @rackup_path = path.to_s
    def pidfile(path) = @pid_file = path.to_s
    alias pid pidfile
    def access_log(path = nil) = @options[:access_log] = path ? File.open(path, "a") : $stdout
    def quiet(flag = true) = @options[:quiet] = flag

    def method_missing(name, *_args, &)
      raise_here("unknown option `#{name}'")
    end

    def respond_to_missing?(_name, _include_private = false) = false

    private

    def hook(name, block)
      raise_here("#{name} needs a block") unless block

      @options[:hooks][name] << block
    end

    def raise_here(message)
      line = caller_locations.find { |l| l.path == @path }&.lineno
      raise Error, "#{@path}:#{line}: #{message}"
    end
  end
end
