# frozen_string_literal: true

require "etc"
require "lunar/process/options"

module Lunar
  # The config file (`-C FILE`, or `config/lunar.rb` when present): Ruby, in Puma's DSL, so
  # that the config/puma.rb a Rails app has loads unchanged. Every option of the table is a
  # method of its name (`timeout 30`, `max_conns 10_000`); Puma's own methods are here with
  # Puma's arguments, old and new hook names alike. A Puma setting Lunar cannot honour, or
  # an unknown one, stops the boot with one line naming the file, the line and the method.
  #
  #   workers ENV.fetch("WEB_CONCURRENCY", 2)
  #   threads 0, 16
  #   port ENV.fetch("PORT", 3000)
  #   preload_app!
  #   before_worker_boot { ActiveRecord::Base.establish_connection }
  #   plugin :tmp_restart
  class DSL
    class Error < StandardError; end

    # Puma's hook names, old and new (Puma 7 renamed the on_* ones), and what Lunar calls them.
    HOOKS = {
      before_fork: :before_fork,
      before_worker_boot: :before_worker_boot, on_worker_boot: :before_worker_boot,
      before_worker_shutdown: :before_worker_shutdown, on_worker_shutdown: :before_worker_shutdown,
      before_worker_fork: :before_worker_fork, on_worker_fork: :before_worker_fork,
      after_worker_fork: :after_worker_fork, after_worker_boot: :after_worker_fork,
      after_worker_shutdown: :after_worker_shutdown,
      before_restart: :before_restart, on_restart: :before_restart,
      after_booted: :after_booted, on_booted: :after_booted,
      after_stopped: :after_stopped, on_stopped: :after_stopped,
      before_thread_start: :before_thread_start, on_thread_start: :before_thread_start,
      before_thread_exit: :before_thread_exit, on_thread_exit: :before_thread_exit
    }.freeze

    # Puma settings with no Lunar equivalent, and why: refused rather than ignored.
    UNSUPPORTED = {
      fork_worker: "Lunar forks every worker from the master", prune_bundler: "workers are forked, not re-executed",
      extra_runtime_dependencies: "workers are forked, not re-executed", app: "give the app as config.ru",
      set_remote_address: "REMOTE_ADDR is the peer's address", supported_http_methods: "every method reaches the app",
      early_hints: "hyper cannot send 103 responses", max_keep_alive: "see max_persistent_conns",
      idle_timeout: "Lunar never stops for want of traffic", force_shutdown_after: "see shutdown_timeout",
      drain_on_shutdown: "connections already accepted are served on a graceful stop",
      fiber_per_request: "see Lunar's streaming bodies", clean_thread_locals: "see Lunar's streaming bodies",
      io_selector_backend: "Lunar's I/O is tokio's", raise_exception_on_sigterm: "TERM always drains and exits 0",
      shutdown_debug: "use the control app's /thread-backtraces", restart_command: "a restart re-runs the same command",
      custom_logger: "see log_format and access_log", log_formatter: "see log_format",
      rack_url_scheme: "the scheme is the connection's", worker_culling_strategy: "TTOU retires the newest worker",
      out_of_band: "no out-of-band hook", before_refork: "no fork_worker", after_refork: "no fork_worker",
      max_fast_inline: "see max_persistent_conns", state_permission: "no state file"
    }.freeze

    # Puma settings that only tune what Lunar does anyway.
    HARMLESS = %i[silence_single_worker_warning silence_fork_callback_warning mutate_stdout_and_stderr_to_sync_on_write
                  bind_to_activated_sockets].freeze

    # Reads `path`; returns the loaded file (settings, hooks, plugins).
    def self.load(path)
      dsl = new(path)
      dsl.instance_eval(File.read(path), path, 1)
      dsl
    rescue Errno::ENOENT, Errno::EACCES => e
      raise Error, "cannot read config file #{path}: #{e.message}"
    rescue SyntaxError => e
      raise Error, "#{e.message.lines.first.strip} (config file)"
    rescue ArgumentError, TypeError, NameError => e # a bad value (Options::Invalid too), or a typo outside an option
      raise Error, "#{path}:#{line_in(e, path)}: #{e.message}"
    end

    def self.line_in(error, path)
      error.backtrace_locations&.find { |l| l.path == path }&.lineno
    end

    attr_reader :settings, :hooks, :plugins

    def initialize(path)
      @path = path
      @settings = {}
      @hooks = Hash.new { |h, k| h[k] = [] }
      @plugins = []
    end

    # Every option of the table, by its name: `timeout 30`, `stream_buffer "1m"`. Not `require`
    # and `include`: in a config file they are Ruby's own (Rails' template requires a library).
    Options::ALL.reject { |o| %i[require include].include?(o.name) }.each do |option|
      define_method(option.name) do |value = (option.type == Options::TYPES[:flag] || nil)|
        set(option.name, value)
      end
    end

    # Puma's signatures for the options it shares with Lunar.
    def port(number, host = nil)
      set(:port, number)
      set(:address, host) if host
    end

    def bind(uri) = set(:bind, uri)
    def evented = set(:mode, "evented")
    def threaded = set(:mode, "threaded")
    def clear_binds! = @settings[:bind] = []
    def set_default_host(host) = set(:address, host) # rubocop:disable Naming/AccessorMethodName -- Puma's name
    def threads(min, max = min) = set(:threads, [min, max])
    def preload_app!(answer = true) = set(:preload_app, answer)
    def pidfile(path) = set(:pidfile, path)
    def pid(path) = set(:pidfile, path)
    def workers(count) = set(:workers, %w[auto].include?(count.to_s) ? Etc.nprocessors : count)
    def worker_shutdown_timeout(seconds) = set(:shutdown_timeout, seconds)
    def http_content_length_limit(bytes) = set(:max_body, bytes)
    def log_requests(answer = true) = @settings[:access_log] = answer ? "-" : nil
    def debug = set(:log_level, "debug")
    def enable_keep_alives(answer = true) = answer ? nil : set(:max_persistent_conns, 0)
    def queue_requests(answer = true) = answer || unsupported(:queue_requests, "Lunar always queues requests for its threads")
    # lunarctl finds Lunar by its control URL or pid file: a state file would change nothing.
    def state_path(_path) = nil

    # Puma's `worker_check_interval` and `wait_for_less_busy_worker`: how often a worker
    # reports, and whether busy workers leave new connections to idle ones (0 = no).
    def worker_check_interval(seconds) = set(:worker_check_interval, seconds)
    def wait_for_less_busy_worker(seconds = 0.005) = set(:wait_for_less_busy_worker, seconds)

    def ssl_bind(host, port, opts = {})
      opts = opts.transform_keys(&:to_sym)
      raise_here("ssl_bind needs cert: and key: (PEM files)") unless opts[:cert] && opts[:key]

      query = { "cert" => opts[:cert], "key" => opts[:key] }
      verify = opts[:verify_mode]&.to_s
      if verify && verify != "none"
        raise_here("ssl_bind: verify_mode must be none, peer or force_peer") unless %w[peer force_peer].include?(verify)
        raise_here("ssl_bind: verify_mode #{verify} needs ca: (PEM CA certificates)") unless opts[:ca]

        query.merge!("ca" => opts[:ca], "verify_mode" => verify)
      end
      unsupported_ssl = opts.keys - %i[cert key ca verify_mode low_latency backlog no_tlsv1 no_tlsv1_1] # rubocop:disable Naming/VariableNumber
      raise_here("ssl_bind: #{unsupported_ssl.join(', ')} not supported by Lunar (rustls chooses ciphers; TLS 1.2+ only)") unless unsupported_ssl.empty?

      set(:bind, "ssl://#{host}:#{Integer(port)}?#{query.map { |k, v| "#{k}=#{v}" }.join('&')}")
    end

    # Puma's signature (a positional boolean).
    def stdout_redirect(stdout = nil, stderr = nil, append = false)
      set(:redirect_stdout, stdout) if stdout
      set(:redirect_stderr, stderr) if stderr
      set(:redirect_append, append)
    end

    def activate_control_app(url = "auto", opts = {})
      raise_here("activate_control_app \"auto\" is not supported: give a tcp:// or unix:// URL") if url.to_s == "auto"

      set(:control_url, url)
      token = opts[:no_token] ? "none" : opts[:auth_token]
      raise_here("activate_control_app needs auth_token: \"…\" (or no_token: true)") unless token

      set(:control_token, token)
    end

    def plugin(name)
      case name.to_s
      when "tmp_restart" then @plugins << :tmp_restart # touching tmp/restart.txt restarts Lunar
      when "systemd" then nil # built into Lunar: sd_notify and socket activation
      else unsupported("plugin :#{name}", "Puma plugins do not run in Lunar")
      end
    end

    def lowlevel_error_handler(handler = nil, &block)
      @settings[:error_handler] = handler || block || raise_here("lowlevel_error_handler needs a block or a callable")
    end

    HOOKS.each do |name, canonical|
      define_method(name) do |*_key, &block|
        raise_here("#{name} needs a block") unless block

        @hooks[canonical] << block
      end
    end

    UNSUPPORTED.each do |name, why|
      define_method(name) { |*_args, **_opts, &_block| unsupported(name, why) }
    end

    HARMLESS.each { |name| define_method(name) { |*_args, **_opts| nil } }

    def method_missing(name, *_args, &)
      raise_here("unknown option `#{name}'")
    end

    def respond_to_missing?(_name, _include_private = false) = false

    private

    def set(name, value)
      option = Options[name]
      checked = option.check(value, name.to_s)
      @settings[name] = option.repeat ? Array(@settings[name]) + Array(checked) : checked
    end

    def unsupported(name, why)
      raise_here("Puma's `#{name}' is not supported by Lunar (#{why})")
    end

    def raise_here(message)
      line = caller_locations.find { |l| l.path == @path }&.lineno
      raise Error, "#{@path}:#{line}: #{message}"
    end
  end
end
