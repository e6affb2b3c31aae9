# frozen_string_literal: true

module Lunar
  # Threaded mode (Puma's model): N Ruby threads take events off the native dispatch queue
  # and run the app. A thread keeps the GVL while events are queued and releases it only to
  # wait (inside `next_event`). A streamed body whose client is slow parks (see Parking)
  # instead of holding its thread. Each thread runs the config file's
  # `before_thread_start` hooks when it starts and `before_thread_exit` ones when it ends.
  class Threaded
    BUSY = :__lunar_busy # thread-local: inside the app now

    def initialize(native, runner, size, context, hooks: nil)
      @native = native
      @runner = runner
      @context = context
      @hooks = hooks || {}
      @threads = Array.new(size) { |i| spawn(i) }
    end

    def description
      "threaded mode, #{@threads.size} thread#{@threads.size == 1 ? '' : 's'}"
    end

    def size = @threads.size

    # Threads inside the app (or writing its response) now.
    def busy
      @threads.count { |t| t[BUSY] }
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
        run_hooks(:before_thread_start)
        work
      ensure
        run_hooks(:before_thread_exit)
      end
    end

    def work
      parking = @context.park_here(@native)
      me = Thread.current
      while @native.running?
        event = @native.next_event(parking.inbox)
        me[BUSY] = true
        if event.equal?(true)
          parking.resume_ready
        elsif event
          @runner.dispatch(event)
        end
        me[BUSY] = false
      end
    end

    def run_hooks(name)
      Array(@hooks[name]).each do |hook|
        hook.call
      rescue StandardError => e
        Log.exception("the #{name} hook failed", e)
      end
    end
  end
end
