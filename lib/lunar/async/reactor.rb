# frozen_string_literal: true

require "lunar/async/callback_attribution"

module Lunar
  # The EventMachine reactor Lunar runs the app on (evented mode) or beside (threaded mode
  # with EventMachine loaded). If one is already running it is used as is; otherwise Lunar
  # runs one on its own thread, shared by every server of the process, and stops it with the
  # last of them. An exception raised by app code on the reactor (EM.next_tick,
  # EM.add_timer), whatever its class, fails the request it was scheduled for (see
  # CallbackAttribution), or else is logged, and the reactor goes on (unless the app
  # installed its own EM.error_handler).
  class Reactor
    LOCK = Mutex.new
    @thread = nil # the reactor thread Lunar started, while it runs
    @users = 0    # servers using it

    class << self
      def start(errors: $stderr)
        new(errors)
      end

      # Uses the running reactor, or starts Lunar's own; true when it is Lunar's (then
      # `release` must follow).
      def acquire
        LOCK.synchronize do
          if ::EM.reactor_running?
            next false unless @thread && ::EM.reactor_thread.equal?(@thread)

            @users += 1
            next true
          end
          CallbackAttribution.install # before the reactor's first tick runs any callback
          @thread = run_reactor
          @users = 1
          true
        end
      end

      # One server less on Lunar's reactor; the last one stops it, holding the lock until
      # it has stopped, so that a server starting meanwhile starts a new one rather than
      # joining one about to end.
      def release
        LOCK.synchronize do
          @users -= 1
          next if @users.positive?

          ::EM.schedule { ::EM.stop_event_loop }
          @thread.join
          @thread = nil
        end
      end

      private

      def run_reactor
        ready = Thread::Queue.new
        thread = Thread.new do
          Thread.current.name = "lunar-reactor"
          ::EM.epoll # as Thin does: select(2) stops at 1,024 descriptors
          ::EM.run { ready << true }
        end
        ready.pop
        thread
      end
    end

    attr_reader :thread

    def initialize(errors)
      require "eventmachine"
      @errors = errors
      @shares_lunars = self.class.acquire
      @thread = ::EM.reactor_thread
      install_error_handler
      CallbackAttribution.install
    end

    # Runs `block` on the reactor: now when already there, else at its next turn. Not
    # EM.schedule: that asks Process.pid (a getpid system call) every time, once per
    # subscriber when thousands of exchanges end together.
    def schedule(&block)
      Thread.current.equal?(@thread) ? block.call : ::EM.next_tick(&block)
    end

    # Runs `block` on the reactor and returns its value (at once when already there).
    def call(&block)
      return block.call if Thread.current.equal?(@thread)

      result = Thread::Queue.new
      ::EM.schedule do
        result << [true, block.call]
      rescue Exception => e # rubocop:disable Lint/RescueException -- handed back to the caller
        result << [false, e]
      end
      ok, value = result.pop
      ok ? value : raise(value)
    end

    # This server is done with the reactor (Lunar's own stops with its last server).
    def stop
      return unless @shares_lunars

      @shares_lunars = false
      self.class.release
    end

    private

    def install_error_handler
      return if ::EM.instance_variable_get(:@error_handler)

      errors = @errors
      ::EM.error_handler do |e|
        errors.puts("lunar: error in app code on the reactor: #{e.class}: #{e.message}")
        errors.puts(Array(e.backtrace).map { |line| "\t#{line}" })
        errors.flush if errors.respond_to?(:flush)
      end
    end
  end
end
