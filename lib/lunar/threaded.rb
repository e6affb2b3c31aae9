# frozen_string_literal: true

module Lunar
  # Threaded mode (Puma's model): N Ruby threads take events off the native dispatch queue
  # and run the app. A thread keeps the GVL while events are queued and releases it only to
  # wait (inside `next_event`). A streamed body whose client is slow parks (see Parking)
  # instead of holding its thread.
  class Threaded
    def initialize(native, runner, size, context)
      @native = native
      @runner = runner
      @context = context
      @threads = Array.new(size) { |i| spawn(i) }
    end

    def description
      "threaded mode, #{@threads.size} thread#{@threads.size == 1 ? '' : 's'}"
    end

    # Waits for the workers to leave (the native queue has closed), killing any still
    # inside the app after `patience` seconds.
    def stop(patience)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + patience
      @threads.each do |t|
        left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        t.kill unless t.join([left, 0].max)
      end
      @threads.each(&:join)
    end

    private

    def spawn(index)
      Thread.new do
        Thread.current.name = "lunar-worker-#{index}"
        work
      end
    end

    def work
      parking = @context.park_here(@native)
      while @native.running?
        event = @native.next_event(parking.inbox)
        if event.equal?(true)
          parking.resume_ready
        elsif event
          @runner.dispatch(event)
        end
      end
    end
  end
end
