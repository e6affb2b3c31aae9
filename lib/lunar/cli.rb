# frozen_string_literal: true

require "optparse"
require "lunar"
require "lunar/server"
require "lunar/launcher"
require "lunar/dsl"
require "lunar/binder"

module Lunar
  # `lunar [options] [config.ru]`: Puma/Thin-style flags, over the config file's settings
  # (`-C FILE`, default `config/lunar.rb` when present). One process (Launcher), or with
  # `-w N` a cluster (Cluster). Usage errors print one line and exit 2.
  class CLI
    class UsageError < StandardError; end

    DEFAULT_CONFIG_FILE = "config/lunar.rb"

    def self.run(argv)
      new(argv).run
    rescue UsageError, OptionParser::ParseError, ArgumentError, DSL::Error => e
      warn "lunar: #{e.message} (see lunar --help)"
      exit 2
    end

    def initialize(argv)
      @options = {}
      @binds = []
      @pid_file = nil
      @config_file = nil
      @rackup = parser.parse(argv.dup).first
    end

    def run
      options, binds = settings
      @rackup ||= "config.ru"
      ENV["RACK_ENV"] = options.delete(:environment) || ENV["RACK_ENV"] || "development"
      @eventmachine = options.delete(:eventmachine) || options[:mode] == :evented
      cluster = options.slice(*DSL::CLUSTER_KEYS)
      options = options.except(*DSL::CLUSTER_KEYS)
      # Binds the user asked for (--ssl included) are matched with systemd's sockets;
      # otherwise systemd's sockets replace the default bind.
      explicit = !binds.empty? || options.key?(:port) || options.key?(:address) || options[:ssl]
      options[:binds] = binds unless binds.empty?
      binder = Binder.new(Configuration.new(options).binds, explicit: explicit)
      readable!(@rackup)
      return serve_cluster(options, cluster, binder) if cluster[:workers].to_i.positive?

      server = Server.new(load_app(@rackup), options.merge(binder.options))
      Launcher.new(server, pid_file: @pid_file, quiet: options[:quiet]).run
    end

    private

    # The config file's settings under the command line's: `[options, binds]`.
    def settings
      path = @config_file || (DEFAULT_CONFIG_FILE if File.file?(DEFAULT_CONFIG_FILE))
      return [@options, @binds] unless path

      file_options, file_binds, file_pid, file_rackup = DSL.load(path)
      @pid_file ||= file_pid
      @rackup ||= file_rackup
      [file_options.merge(@options), @binds.empty? ? file_binds : @binds]
    end

    def serve_cluster(options, cluster, binder)
      require "lunar/cluster"
      require "rack" # for the boot line; the app itself may load in the workers
      binder.listen!
      status = Cluster.new(options, cluster, binder: binder, load_app: -> { load_app(@rackup) }, pid_file: @pid_file).run
      exit status
    end

    def readable!(path)
      raise UsageError, "cannot read #{path}" unless File.file?(path) && File.readable?(path)
    end

    def load_app(path)
      require "rack"
      # As `thin start` does: EventMachine is loaded before the app, so config.ru can use it.
      require "eventmachine" if @eventmachine
      app = ::Rack::Builder.parse_file(File.expand_path(path))
      app.is_a?(Array) ? app.first : app # Rack 2 returns [app, options]
    rescue Exception => e # rubocop:disable Lint/RescueException -- report any load failure, then exit
      warn "lunar: error loading #{path}: #{e.class}: #{e.message}"
      warn(e.backtrace.first(5).map { |l| "\t#{l}" })
      warn EM_HINT if e.is_a?(NameError) && e.message.match?(/\b(EventMachine|EM)\b/)
      exit 1
    end

    EM_HINT = "lunar: this app uses EventMachine without requiring it; run `lunar --evented` (the app on the " \
              "reactor) or `lunar --threaded --eventmachine` (thin start --threaded), which load it before the app"

    def size(text)
      Configuration.parse_size(text)
    end

    def parser
      OptionParser.new do |opts|
        opts.banner = "Usage: lunar [options] [config.ru]"
        listening_options(opts)
        process_options(opts)
        limit_options(opts)
        buffer_options(opts)
        other_options(opts)
      end
    end

    def listening_options(opts)
      opts.on("-p", "--port PORT", Integer, "Port (default 9292)") { |v| @options[:port] = v }
      opts.on("-a", "--address HOST", "Address to bind (default 0.0.0.0)") { |v| @options[:address] = v }
      opts.on("-b", "--bind URI", "tcp://HOST:PORT, ssl://HOST:PORT?cert=PATH&key=PATH or unix:///PATH (repeatable)") { |v| @binds << v }
      opts.on("--ssl", "Serve TLS (h2 and http/1.1 by ALPN) on the tcp binds; needs the two below") { @options[:ssl] = true }
      opts.on("--ssl-cert-file PATH", "PEM certificate chain for --ssl") { |v| @options[:ssl_cert] = v }
      opts.on("--ssl-key-file PATH", "PEM private key for --ssl") { |v| @options[:ssl_key] = v }
    end

    def process_options(opts)
      opts.on("-C", "--config FILE", "Config file (Ruby, Puma's style; default #{DEFAULT_CONFIG_FILE} when present)") { |v| @config_file = v }
      opts.on("-w", "--workers N", Integer, "Cluster mode: fork N worker processes sharing the sockets (default 0: one process)") { |v| @options[:workers] = v }
      opts.on("--preload", "Cluster mode: load the app in the master before forking") { @options[:preload_app] = true }
      opts.on("--evented", "Run the app on the EventMachine reactor (Thin's model; loads EventMachine)") { @options[:mode] = :evented }
      opts.on("--threaded", "Run the app on a pool of Ruby threads (Puma's model)") { @options[:mode] = :threaded }
      opts.on("--eventmachine", "--em", "Load EventMachine before the app and run its reactor (with --threaded: thin start --threaded)") do
        @options[:eventmachine] = true
      end
      opts.on("--async", "Offer async.callback/async.close in threaded mode without EventMachine (Rails throw :async)") { @options[:async] = true }
      opts.on("-t", "--threads N", Integer, "Ruby threads calling the app in threaded mode (default 5)") { |v| @options[:threads] = v }
      opts.on("--io-threads N", Integer, "tokio I/O threads (default: one per core)") { |v| @options[:io_threads] = v }
    end

    def limit_options(opts)
      opts.on("--timeout SEC", Float, "Close connections idle this long (default 30, 0 = never)") { |v| @options[:timeout] = v }
      opts.on("--header-timeout SEC", Float, "Time allowed to send a request head (default 30)") { |v| @options[:header_timeout] = v }
      opts.on("--max-body SIZE", "Largest request body, e.g. 10m (default 64m)") { |v| @options[:max_body] = size(v) }
      opts.on("--max-header-size SIZE", "Largest request head (default 64k)") { |v| @options[:max_header_size] = size(v) }
      opts.on("--max-persistent-conns N", Integer, "HTTP/1 connections kept alive at once; 0 = close after every response (default: no limit)") do |v|
        @options[:max_persistent_conns] = v
      end
      opts.on("--max-conns N", Integer, "Connections held at once; past it, 503 and close (default: open-file limit - 100)") { |v| @options[:max_conns] = v }
      opts.on("--queue SIZE", Integer, "Requests waiting for a thread before 503 (default 1024)") { |v| @options[:queue_capacity] = v }
      opts.on("--shutdown-timeout SEC", Float, "Grace for in-flight requests on stop (default 30)") { |v| @options[:shutdown_timeout] = v }
    end

    def buffer_options(opts)
      opts.on("--stream-buffer SIZE", "Bytes a streamed response may queue for a slow client (default 1m)") { |v| @options[:stream_buffer] = size(v) }
      opts.on("--connection-buffer SIZE", "Bytes all of one connection's responses may queue (HTTP/2 streams; default 4m)") do |v|
        @options[:connection_buffer] = size(v)
      end
      opts.on("--max-ws-message SIZE", "Largest message a Topic#websocket client may send (default 1m)") { |v| @options[:max_ws_message] = size(v) }
      opts.on("--write-timeout SEC", Float, "How long a write on the reactor waits for a slow client before cutting it off (default 1)") do |v|
        @options[:write_timeout] = v
      end
    end

    def other_options(opts)
      opts.on("-e", "--environment ENV", "RACK_ENV (default development)") { |v| @options[:environment] = v }
      opts.on("-r", "--require LIB", "Require LIB before loading the app") { |v| require v }
      opts.on("-I", "--include DIR", "Add DIR to $LOAD_PATH") { |v| $LOAD_PATH.unshift(*v.split(":")) }
      opts.on("--access-log [FILE]", "Common Log Format to FILE (default stdout)") { |v| @options[:access_log] = v ? File.open(v, "a") : $stdout }
      opts.on("--pid FILE", "Write the process id to FILE") { |v| @pid_file = v }
      opts.on("-q", "--quiet", "No boot line") { @options[:quiet] = true }
      opts.on("-v", "--version", "Print the version") do
        puts "Lunar #{VERSION}"
        exit 0
      end
      opts.on("-h", "--help", "This help") do
        puts opts
        exit 0
      end
    end
  end
end
