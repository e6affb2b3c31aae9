# frozen_string_literal: true

require "lunar/process/configuration"
require "lunar/request/app_runner"
require "lunar/request/access_log"
require "lunar/request/server_context"
require "lunar/request/threaded"

module Lunar
  # A running Lunar: the native server (sockets, HTTP) plus the Ruby side calling the app,
  # in one of two modes:
  # - evented (Thin's model): the app runs on the EventMachine reactor thread;
  # - threaded (Puma's model): the app runs on a pool of Ruby threads; if EventMachine is
  #   loaded its reactor runs beside them, so timers and async.callback work.
  # The default is evented when EventMachine is loaded, threaded otherwise. With
  # `io_threads: 0` (threaded only) the pool's threads also do the I/O, between requests.
  # Start and stop it as often as you like within one process.
  #
  #   server = Lunar::Server.new(app, port: 0).start
  #   server.addresses   # => ["tcp://0.0.0.0:40123"]
  #   server.stop.wait
  class Server
    # After the grace period the sockets are closed; app code still running gets this long
    # to notice before its thread is killed.
    FORCE_STOP_AFTER = 1
    INLINE_EVENTED = "--io-threads 0 needs threaded mode (--threads): EventMachine's reactor cannot " \
                     "drive Lunar's I/O; give --io-threads 1 or more with --evented"

    attr_reader :config, :app

    def initialize(app, options = {})
      @app = app
      @config = options.is_a?(Configuration) ? options : Configuration.new(options)
      @done = Thread::Queue.new
      @stopper = nil
    end

    def start
      raise "Lunar::Server already started" if @native

      mode = @config.mode
      @reactor = start_reactor(mode)
      async = mode == :evented || !@reactor.nil? || @config[:async]
      @context = ServerContext.new(access_log: @config[:access_log] && AccessLog.open(@config[:access_log]),
                                   reactor: @reactor, write_timeout: @config[:write_timeout],
                                   error_handler: @config[:error_handler], environment: @config[:environment])
      rack_env = RackEnv.new(multithread: mode == :threaded && @config.threads > 1, async: async)
      runner = AppRunner.new(@app, rack_env, @context, async: async, defer: mode == :evented ? method(:defer) : nil)
      @native = Native::Server.start(native_options(mode))
      @workers = build_workers(mode, runner)
      self
    rescue StandardError
      @native&.stop(0)
      @reactor&.stop
      raise
    end

    def addresses
      @native ? @native.addresses : []
    end

    # The first TCP (or TLS) port (handy with port 0).
    def port
      tcp = addresses.find { |a| a.start_with?("tcp://", "ssl://") }
      tcp && Integer(tcp[/:(\d+)\z/, 1])
    end

    # "evented mode (…)" or "threaded mode, N threads", for boot lines.
    def mode
      @workers ? @workers.description : @config.mode.to_s
    end

    def running?
      !@native.nil? && @native.running?
    end

    def live_connections
      @native ? @native.live_connections : 0
    end

    def max_connections
      @native&.max_connections
    end

    # [soft open-file limit before the start, after it] (raised to the hard limit).
    def open_files
      @native&.open_files
    end

    # Async responses pending, and deferrable or parkable bodies streaming.
    def pending_async
      @context ? @context.registry.size : 0
    end

    # Streamed bodies parked now, waiting for a slow client (see Parking).
    def parked_bodies
      @context ? @context.parked : 0
    end

    # Puma's stats for one server (the keys its exporters read), and Lunar's own.
    def stats
      threads = @workers ? @workers.size : 0
      running = @workers ? @workers.running : 0
      busy = @workers ? @workers.busy : 0
      { backlog: @native ? @native.queue_length : 0, running: running, pool_capacity: running - busy, busy_threads: busy,
        max_threads: threads, requests_count: @native ? @native.requests_count : 0,
        connections: live_connections, max_connections: max_connections, async_pending: pending_async,
        parked_bodies: parked_bodies, websockets: @native ? @native.websockets : 0,
        hijacked_sockets: @native ? @native.hijacked_sockets : 0 }.merge(Topic.stats)
    end

    # Reopens the access log file (HUP, after logrotate moved it).
    def reopen_logs
      @context&.access_log&.reopen
    end

    # Graceful stop: stop accepting, let in-flight requests (and pending async responses)
    # finish for up to `grace` seconds, then close the rest, firing their async.close.
    # Returns at once (safe in a signal trap); `wait` blocks until the stop is complete.
    def stop(grace = @config[:shutdown_timeout])
      return self unless @native

      @native.hurry if @stopper && grace.to_f <= 0 # a stop under way: end its grace now
      @stopper ||= Thread.new do
        @native.stop(grace.to_f)
        @workers.stop(FORCE_STOP_AFTER)
        close_pending
        @reactor&.stop
        @done << true
      end
      self
    end

    # Stop without a grace period.
    def halt
      stop(0)
    end

    # Blocks until the server has stopped.
    def wait
      return self unless @native

      @done.pop
      @done << true # let any other waiter through too
      self
    end

    def run
      start
      yield self if block_given?
      wait
    end

    private

    # A deferred request (the app's `deferred?(env)`, evented mode) runs on EventMachine's
    # thread pool, as under Thin.
    def defer(&work)
      ::EM.defer(work)
    end

    def start_reactor(mode)
      return unless mode == :evented || defined?(::EventMachine)

      require "lunar/async/reactor"
      Reactor.start(on_end: method(:reactor_ended))
    end

    # Lunar's reactor ended under this server (the app called EM.stop, or an exception got
    # past every handler): stop, as Thin does when its reactor stops, rather than go on
    # accepting connections nothing will answer. Called on the ending reactor's thread.
    def reactor_ended(error)
      message = "the EventMachine reactor stopped; this server stops too"
      error ? Log.exception(message, error) : Log.error("#{message} (EM.stop)")
      stop(0)
    end

    # What the native core is handed. Balancing across workers (Puma's
    # wait_for_less_busy_worker) needs siblings and a thread pool whose busy threads it can see.
    def native_options(mode)
      options = @config.native_options
      raise ConfigError, INLINE_EVENTED if mode == :evented && options[:io_threads]&.zero? # the reactor cannot drive it

      options[:wait_for_less_busy_worker] = 0 unless @config[:cluster_worker] && mode == :threaded
      options
    end

    def build_workers(mode, runner)
      return Threaded.new(@native, runner, @config.threads, @context, hooks: @config.hooks) if mode == :threaded

      require "lunar/request/evented"
      Evented.new(@native, runner, @reactor, @context)
    end

    # Connections the stop closed: their async.close fires, on the reactor if there is one.
    def close_pending
      pending = @context.registry.take_all
      return if pending.empty?

      run = -> { pending.each(&:client_gone) }
      @reactor ? @reactor.call(&run) : run.call
    end
  end
end
