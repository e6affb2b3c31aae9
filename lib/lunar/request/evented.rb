# frozen_string_literal: true

module Lunar
  # Evented mode (Thin's model): the app runs on the EventMachine reactor thread, so
  # EM.next_tick, EM.add_timer and EM::Channel behave exactly as under `thin start`. The
  # reactor watches the native queue's eventfd (one write per burst) and drains the queue
  # in turns, yielding to timers and I/O between turns.
  #
  # A turn takes the events queued when it starts, as one EventMachine loop reads the
  # requests that arrived by then: what arrives during a turn, and a wake-up while the app's
  # EM.next_tick blocks wait, is taken in a turn queued behind those blocks. So, as under
  # Thin, a block scheduled for one request runs before any request a client sent after
  # seeing it answered (a subscriber registered in a next_tick gets the next publish).
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
      @drain = method(:drain)
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
      next_ticks_waiting? ? drain_later : drain
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

    # One turn: the events queued now, at most BATCH looks (the rest in a later turn, after
    # the blocks this one scheduled); parked bodies that can go on (the inbox's `true`) run
    # between them without counting as events; a request whose client left while queued
    # counts, though nothing runs for it. What arrives meanwhile has rung the eventfd.
    def drain
      @drain_queued = false
      left = @native.queued_events
      return resume_parked if left.zero?

      BATCH.times do
        event = @native.try_next_event(@parking.inbox)
        return if event.nil?
        next @parking.resume_ready if event.equal?(true)

        @runner.dispatch(event) unless event.equal?(false) # false: its client left while it was queued
        return if (left -= 1).zero?
      end
      drain_later
    end

    # A wake-up with nothing queued: for parked bodies, or for events a turn already took.
    def resume_parked
      @parking.resume_ready if @parking.inbox.ready?
    end

    def drain_later
      return if @drain_queued

      @drain_queued = true
      ::EM.next_tick(@drain)
    end

    # Whether EM.next_tick blocks wait to run. EventMachine has no reader for its queue; read
    # without its lock, as a new block from another thread has no order to keep with requests.
    def next_ticks_waiting?
      queue = ::EM.instance_variable_get(:@next_tick_queue)
      queue ? !queue.empty? : false
    end
  end
end
