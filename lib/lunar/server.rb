# frozen_string_literal: true

require "lunar/configuration"
require "lunar/app_runner"
require "lunar/access_log"
require "lunar/thread_pool"

module Lunar
  # A running Lunar: the native server (sockets, HTTP) plus the Ruby threads that call the
  # app. Start and stop it as often as you like within one process.
  #
  #   server = Lunar::Server.new(app, port: 0).start
  #   server.addresses   # => ["tcp://0.0.0.0:40123"]
  #   server.stop.wait
  class Server
    # After the grace period the sockets are closed; app code still running gets this long
    # to notice before its thread is killed.
    FORCE_STOP_AFTER = 1

    attr_reader :config, :app

    def initialize(app, options = {})
      @app = app
      @config = options.is_a?(Configuration) ? options : Configuration.new(options)
      @done = Thread::Queue.new
      @stopper = nil
    end

    def start
      raise "Lunar::Server already started" if @native

      @native = Native::Server.start(@config.native_options)
      rack_env = RackEnv.new(multithread: @config[:threads] > 1)
      log = @config[:access_log] && AccessLog.new(@config[:access_log])
      runner = AppRunner.new(@app, rack_env, access_log: log)
      @pool = ThreadPool.new(@native, runner, @config[:threads])
      self
    end

    def addresses
      @native ? @native.addresses : []
    end

    # The first TCP port (handy with port 0).
    def port
      tcp = addresses.find { |a| a.start_with?("tcp://") }
      tcp && Integer(tcp[/:(\d+)\z/, 1])
    end

    def mode
      "threaded"
    end

    def running?
      !@native.nil? && @native.running?
    end

    def live_connections
      @native ? @native.live_connections : 0
    end

    # Graceful stop: stop accepting, let in-flight requests finish for up to `grace`
    # seconds, then close the rest. Returns at once (safe in a signal trap); `wait` blocks
    # until the stop is complete.
    def stop(grace = @config[:shutdown_timeout])
      return self unless @native

      @stopper ||= Thread.new do
        @native.stop(grace.to_f)
        @pool.stop(FORCE_STOP_AFTER)
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
  end
end
