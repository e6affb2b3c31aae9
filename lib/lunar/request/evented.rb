# frozen_string_literal: true

module Lunar
  # Evented mode (Thin's model): the app runs on the EventMachine reactor thread, so
  # EM.next_tick, EM.add_timer and EM::Channel behave exactly as under `thin start`. The
  # reactor watches the native queue's eventfd (one write per burst) and drains the queue
  # in batches, yielding to timers and I/O between batches.
  class Evented
    BATCH = 256

    # EM.watch handler for the eventfd.
    module Watcher
      def initialize(mode)
        super()
        @mode = mode
      end

      def notify_readable
        @mode.notified
      end
    end

    def initialize(native, runner, reactor, context)
      @native = native
      @runner = runner
      @reactor = reactor
      @context = context
      @reactor.call { attach }
    end

    def description
      "evented mode (EventMachine #{::EventMachine::VERSION} reactor)"
    end

    # The reactor is the one thread calling the app.
    def size = 1

    def running = @reactor.alive? ? 1 : 0

    def busy = 0

    def notified
      @native.rearm_notify # before draining: whatever is queued from now on wakes us again
      drain
    end

    def stop(_patience)
      @reactor.call { @watch&.detach if @reactor.alive? } # an ended reactor has nothing to detach from
    end

    private

    def attach
      @parking = @context.park_here(@native) # streamed bodies park here (see Parking)
      io = IO.for_fd(@native.notify_fd, autoclose: false)
      @watch = ::EM.watch(io, Watcher, self)
      @watch.notify_readable = true
      drain
    end

    def drain
      BATCH.times do
        event = @native.try_next_event(@parking.inbox) or return
        event.equal?(true) ? @parking.resume_ready : @runner.dispatch(event)
      end
      ::EM.next_tick { drain } # more queued: continue after other reactor work
    end
  end
end
