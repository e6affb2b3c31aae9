# frozen_string_literal: true

require "English"
require "lunar/request/app_errors"

module Lunar
  # Threaded mode (Puma's model): N Ruby threads take events off the native dispatch queue
  # and run the app (inline, `io_threads: 0`, they also drive the I/O while they wait for
  # events, Thin's one-thread model). A thread keeps the GVL while events are queued and
  # releases it only to wait (inside `next_event`). A streamed body whose client is slow
  # parks (see Parking) instead of holding its thread. Each thread runs the config file's
  # `before_thread_start` hooks when it starts and `before_thread_exit` ones when it ends.
  # Whatever app code raises is answered and the thread goes on; a thread app code ends
  # (Thread.exit) is replaced.
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
      "threaded mode, #{@threads.size} thread#{@threads.size == 1 ? '' : 's'}#{', doing the I/O (inline)' if @native.inline?}"
    end

    def size = @threads.size

    # Threads alive (Puma's `running`): `size` unless one died of an error in Lunar itself.
    def running = @threads.count(&:alive?)

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
        next if ended?(t, [left, 0].max)

        t.kill
        ended?(t, nil)
      end
    end

    private

    def spawn(index)
      Thread.new do
        Thread.current.name = "lunar-worker-#{index}"
        run_hooks(:before_thread_start)
        work
      ensure
        run_hooks(:before_thread_exit)
        replace(index) unless $ERROR_INFO # ended by Thread.exit or Thread#kill, not an error
      end
    end

    # App code ended a worker (Thread.exit or Thread#kill inside a request; its client got
    # a 503) while the server runs: a new thread takes its place, as Puma's pool starts one
    # for waiting work. Not after an exception: the worker survives every exception app
    # code raises, so one escaping is Lunar's fault, reported, and not worth a loop. Nor at
    # the process's end (a script, a test run, that never stopped its server).
    def replace(index)
      @threads[index] = spawn(index) if @native.running?
    rescue ThreadError # the process is ending with the server still up: Ruby kills every thread
      nil
    end

    def work
      parking = @context.park_here(@native)
      me = Thread.current
      while @native.running?
        event = next_event(parking, me) or next
        me[BUSY] = true
        if event.equal?(true)
          parking.resume_ready
        elsif event
          @runner.dispatch(event) # answers whatever the app raises (APP_ERRORS)
        end
        me[BUSY] = false
      end
    end

    # The next event; nil if app code raised into this thread while it waited (rack-timeout's
    # timer firing as its request ended does): logged, and the thread goes on serving.
    def next_event(parking, thread)
      @native.next_event(parking.inbox)
    rescue *APP_ERRORS => e
      Log.exception("#{thread.name}: raised into while waiting for a request; ignored", e)
      nil
    end

    # Whether `thread` ended within `seconds` (nil: however long it takes). Thread#join
    # raises what a thread died of; Ruby reported it then, and a stop must not end there.
    def ended?(thread, seconds)
      thread.join(seconds)
    rescue Exception # rubocop:disable Lint/RescueException -- the dead thread's own, reported when it died
      true
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
