# frozen_string_literal: true

require "lunar/callback_attribution"

module Lunar
  # The EventMachine reactor Lunar runs the app on (evented mode) or beside (threaded mode
  # with EventMachine loaded). If one is already running it is used as is; otherwise Lunar
  # runs one on its own thread and stops it with the server. An exception raised by app
  # code on the reactor (EM.next_tick, EM.add_timer) fails the request it was scheduled for
  # (see CallbackAttribution), or else is logged, and the reactor goes on (unless the app
  # installed its own EM.error_handler).
  class Reactor
    def self.start(errors: $stderr)
      new(errors)
    end

    attr_reader :thread

    def initialize(errors)
      require "eventmachine"
      @errors = errors
      @owned = !::EM.reactor_running?
      if @owned
        ready = Thread::Queue.new
        @thread = Thread.new do
          Thread.current.name = "lunar-reactor"
          ::EM.epoll # as Thin does: select(2) stops at 1,024 descriptors
          ::EM.run { ready << true }
        end
        ready.pop
      end
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

    def stop
      return unless @owned

      ::EM.schedule { ::EM.stop_event_loop }
      @thread.join
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
