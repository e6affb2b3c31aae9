# frozen_string_literal: true

require "lunar/async/callback_attribution"
require "lunar/async/scheduled_call"

module Lunar
  # The EventMachine reactor Lunar runs the app on (evented mode) or beside (threaded mode
  # with EventMachine loaded). If one is already running it is used as is; otherwise Lunar
  # runs one on its own thread, shared by every server of the process, and stops it with the
  # last of them. An exception raised by app code on the reactor (EM.next_tick,
  # EM.add_timer), whatever its class, fails the request it was scheduled for (see
  # CallbackAttribution), or else is logged, and the reactor goes on (unless the app
  # installed its own EM.error_handler).
  #
  # If Lunar's reactor ends while servers use it (the app called EM.stop, or an exception
  # got past every handler), each of them is told (`on_end`) and stops, as Thin stops when
  # its reactor does: a server whose reactor is gone would accept and never answer.
  class Reactor
    LOCK = Mutex.new
    @thread = nil # the reactor thread Lunar started, while it runs
    @users = 0    # servers using it
    @on_end = {}.freeze # Reactor instance => [its reactor thread, its server's callback]; replaced, never changed

    class << self
      # `on_end`: called (with the exception, or nil) if the reactor ends under this server.
      def start(errors: $stderr, on_end: nil)
        new(errors, on_end)
      end

      # Uses the running reactor, or starts Lunar's own; that thread when it is Lunar's
      # (then `release` must follow), else nil.
      def acquire
        LOCK.synchronize do
          if ::EM.reactor_running?
            next nil unless @thread && ::EM.reactor_thread.equal?(@thread)

            @users += 1
            next @thread
          end
          CallbackAttribution.install # before the reactor's first tick runs any callback
          @thread = run_reactor
          @users = 1
          @thread
        end
      end

      # One server less on Lunar's reactor `thread`; the last one stops it, holding the lock
      # until it has stopped, so that a server starting meanwhile starts a new one rather
      # than joining one about to end. Nothing to stop if it ended already.
      def release(thread)
        LOCK.synchronize do
          next unless thread.equal?(@thread) # one that ended, replaced since

          @users -= 1
          next if @users.positive?

          # Checked inside as well: scheduled while the reactor was ending on its own, the
          # block would wait in EventMachine's queue and stop the next reactor instead.
          ::EM.schedule { ::EM.stop_event_loop if ::EM.reactor_thread.equal?(thread) } if thread.alive?
          thread.join # it never dies of an exception: it hands it to `ended`
          @thread = nil
        end
      end

      # A server (its Reactor) to be told if `thread` ends under it; `forget` before `release`.
      def listen(reactor, thread, callback) = LOCK.synchronize { @on_end = @on_end.merge(reactor => [thread, callback]).freeze }
      def forget(reactor) = LOCK.synchronize { @on_end = @on_end.except(reactor).freeze }

      private

      def run_reactor
        ready = Thread::Queue.new
        thread = Thread.new do
          Thread.current.name = "lunar-reactor"
          ::EM.epoll # as Thin does: select(2) stops at 1,024 descriptors
          ::EM.run { ready << true }
          ended(Thread.current, nil)
        rescue Exception => e # rubocop:disable Lint/RescueException -- whatever ended it, the servers must know
          ended(Thread.current, e)
        end
        ready.pop
        thread
      end

      # The reactor thread's last act: the servers still on it are told (when Lunar stops it,
      # its last server has forgotten it already, so none are). Without the LOCK, which
      # `release` holds while joining this thread: @on_end is replaced whole, never changed.
      def ended(thread, error)
        @on_end.each_value { |on, callback| callback.call(error) if on.equal?(thread) }
      end
    end

    attr_reader :thread

    def initialize(errors, on_end = nil)
      require "eventmachine"
      @errors = errors
      @lunars = self.class.acquire # Lunar's own reactor thread, or nil
      @thread = ::EM.reactor_thread
      self.class.listen(self, @lunars, on_end) if @lunars && on_end
      install_error_handler
      CallbackAttribution.install
    end

    # Whether the reactor still runs (false once it has ended under this server, even while
    # its thread is still telling the servers so). A running reactor's thread is alive, and
    # EventMachine clears it when the run ends.
    def alive?
      ::EM.reactor_running? && ::EM.reactor_thread.equal?(@thread)
    end

    # Runs `block` on the reactor: now when already there, else at its next turn. Not
    # EM.schedule: that asks Process.pid (a getpid system call) every time, once per
    # subscriber when thousands of exchanges end together.
    def schedule(&block)
      Thread.current.equal?(@thread) ? block.call : ::EM.next_tick(&block)
    end

    # Runs `block` on the reactor and returns its value (at once when already there, or
    # when the reactor has ended: nothing else runs EventMachine's code then, and if it ends
    # before getting to the block, the caller runs it; see ScheduledCall).
    def call(&block)
      return block.call if Thread.current.equal?(@thread) || !alive?

      scheduled = ScheduledCall.new(block)
      ::EM.next_tick(scheduled)
      scheduled.value { alive? }
    end

    # This server is done with the reactor (Lunar's own stops with its last server).
    def stop
      return unless @lunars

      self.class.forget(self)
      self.class.release(@lunars)
      @lunars = nil
    end

    private

    def install_error_handler
      return if CallbackAttribution.error_handler

      errors = @errors
      ::EM.error_handler do |e|
        errors.puts("lunar: error in app code on the reactor: #{Log.describe(e)}")
        errors.puts(Log.backtrace_of(e).map { |line| "\t#{line}" })
        errors.flush if errors.respond_to?(:flush)
      end
    end
  end
end
