# frozen_string_literal: true

require "erb"
require "yaml"
require "lunar/process/options"

module Lunar
  # A Thin deployment's config file, as `thin config -C config/thin.yml` writes it (YAML,
  # ERB first, keys with or without a leading colon), read into Lunar's settings. `servers: N`
  # becomes N workers, each serving all N of Thin's ports (port … port+N-1, or socket.0 …
  # socket.N-1), so a proxy balancing those ports keeps working. Keys Lunar cannot honour
  # stop the boot with one line naming them; `daemonize: true` (which `thin config` always
  # writes) says to run Lunar under systemd instead.
  class ThinConfig
    # Thin key → [Lunar option, how the value converts].
    KEYS = {
      "chdir" => :directory, "environment" => :environment, "address" => :address, "port" => :port,
      "timeout" => :timeout, "pid" => :pidfile, "max_conns" => :max_conns, "max_persistent_conns" => :max_persistent_conns,
      "require" => :require, "rackup" => :rackup, "tag" => :tag, "ssl" => :ssl, "ssl_key_file" => :ssl_key_file,
      "ssl_cert_file" => :ssl_cert_file, "quiet" => :quiet, "wait" => :worker_boot_timeout
    }.freeze
    # Keys that change nothing Lunar does (Thin's own machinery), and why.
    MOOT = {
      "onebyone" => "a phased restart (USR1) already replaces workers one by one",
      "ssl_disable_verify" => "Lunar asks for no client certificate unless ssl_verify says so",
      "no_epoll" => "Lunar's reactor always runs on epoll", "daemonize" => nil
    }.freeze
    UNSUPPORTED = {
      "user" => "run Lunar as that user from systemd (User=, Group=)", "group" => "run Lunar as that user from systemd (User=, Group=)",
      "only" => "a cluster's workers all serve every port", "swiftiply" => "no Swiftiply", "adapter" => "give the app as config.ru",
      "backend" => "Lunar's backend is hyper", "stats" => "use the control app's /stats (--control-url)",
      "prefix" => "mount the app under a path in config.ru (Rack::URLMap)", "all" => "run one Lunar per config file",
      "force" => "a stop is TERM (graceful) or INT (now)", "ssl_version" => "rustls speaks TLS 1.2 and 1.3",
      "ssl_cipher_list" => "rustls chooses the ciphers", "trace" => "see --log-level debug"
    }.freeze

    attr_reader :settings, :hooks, :plugins

    def self.load(path)
      new(path)
    end

    def initialize(path)
      @path = path
      @hooks = {}
      @plugins = []
      raw = YAML.safe_load(ERB.new(File.read(path)).result, permitted_classes: [Symbol], aliases: true) || {}
      raise DSL::Error, "#{path}: not a Thin config file (a YAML mapping)" unless raw.is_a?(Hash)

      @thin = raw.transform_keys { |k| k.to_s.delete_prefix(":").tr("-", "_") }
      @settings = {}
      @thin.each { |key, value| read(key, value) }
      cluster if @thin["servers"]
    rescue Errno::ENOENT, Errno::EACCES => e
      raise DSL::Error, "cannot read config file #{path}: #{e.message}"
    rescue Psych::Exception => e
      raise DSL::Error, "#{path}: #{e.message}"
    end

    private

    # Keys read by a method of their own.
    SPECIAL = %w[daemonize socket threaded threadpool_size log debug].freeze

    def read(key, value)
      return set(KEYS[key], value) if KEYS.key?(key)
      return send(:"read_#{key}", value) if SPECIAL.include?(key)
      return refuse(key, UNSUPPORTED[key]) if UNSUPPORTED.key?(key)

      refuse(key, "not a Thin setting Lunar knows") unless MOOT.key?(key) || key == "servers"
    end

    def read_daemonize(value)
      refuse("daemonize", "Lunar stays in the foreground: run it under systemd (examples/systemd/) and remove `daemonize: true`") if value
    end

    def read_socket(path) = @settings[:bind] = ["unix://#{File.expand_path(path.to_s)}"]
    def read_threadpool_size(size) = (set(:threads, size) if @thin["threaded"])
    def read_debug(value) = (set(:log_level, "debug") if value)
    def read_threaded(value) = threaded(value)
    def read_log(path) = log(path)

    # Thin's --threaded: the app on a pool of threads, EventMachine's reactor beside it.
    def threaded(value)
      return unless value

      set(:mode, "threaded")
      set(:eventmachine, true)
    end

    # Thin writes its log when daemonized: in the foreground, Lunar appends both streams to it.
    def log(path)
      set(:redirect_stdout, path)
      set(:redirect_stderr, path)
      set(:redirect_append, true)
    end

    # `servers: N`: N workers, each serving Thin's N ports (or sockets); `servers: 1` is one
    # process, as one Thin server is.
    def cluster
      count = Options[:workers].check(@thin["servers"], "#{@path}: servers")
      set(:workers, count > 1 ? count : 0)
      if (socket = @settings[:bind]&.first)
        path = socket.delete_prefix("unix://")
        @settings[:bind] = Array.new(count) { |n| "unix://#{numbered(path, n)}" }
      else
        port = @settings.delete(:port) || 3000 # the binds name every port now
        host = @settings.delete(:address) || "0.0.0.0"
        @settings[:bind] = Array.new(count) { |n| "tcp://#{host}:#{port + n}" }
      end
    end

    # Thin's member file names: thin.sock → thin.0.sock.
    def numbered(path, index)
      ext = File.extname(path)
      ext.empty? ? "#{path}.#{index}" : path.sub(/#{Regexp.escape(ext)}\z/, ".#{index}#{ext}")
    end

    def set(name, value)
      option = Options[name]
      checked = option.check(value, "#{@path}: #{name}")
      @settings[name] = option.repeat ? Array(@settings[name]) + Array(checked) : checked
    rescue Options::Invalid => e
      raise DSL::Error, e.message
    end

    def refuse(key, why)
      raise DSL::Error, "#{@path}: Thin's `#{key}' is not supported by Lunar (#{why})"
    end
  end
end
