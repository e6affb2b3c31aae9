# frozen_string_literal: true

module Lunar
  # A block another thread hands the reactor and waits for (Reactor#call), run exactly once.
  #
  # Normally the reactor runs it and the caller gets its value. But the reactor may end
  # after the caller saw it alive and before it got to the block (the app called EM.stop as
  # a server stopped): EventMachine keeps its next-tick queue past the end of a run, so the
  # block would wait there for ever, or for the next reactor of the process, and its caller
  # with it. So the caller looks again every WAKE seconds; once the reactor has ended with
  # the block still queued, the caller claims it and runs it itself (nothing else runs
  # EventMachine's code then), and a later reactor finding it queued does nothing.
  class ScheduledCall
    WAKE = 0.1 # seconds between the caller's looks at the reactor

    def initialize(block)
      @block = block
      @lock = Mutex.new
      @changed = ConditionVariable.new
      @state = :queued # then :running, then :done
    end

    # The reactor's side: EventMachine calls what it schedules without arguments.
    def call
      run if claim
    end

    # The caller's side: the block's value (or what it raised, raised again here). `alive`
    # tells whether the reactor still runs.
    def value(&alive)
      @lock.synchronize do
        @changed.wait(@lock, WAKE) until @state == :done || (@state == :queued && !alive.call)
      end
      run if claim # still queued: the reactor ended without it
      @lock.synchronize { @changed.wait(@lock) until @state == :done }
      @error ? raise(@error) : @result
    end

    private

    def claim
      @lock.synchronize do
        next false unless @state == :queued

        @state = :running
      end
    end

    def run
      @result = @block.call
    rescue Exception => e # rubocop:disable Lint/RescueException -- handed back to the caller
      @error = e
    ensure
      @lock.synchronize do
        @state = :done
        @changed.broadcast
      end
    end
  end
end
