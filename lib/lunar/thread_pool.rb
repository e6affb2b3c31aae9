# frozen_string_literal: true

module Lunar
  # Threaded mode (Puma's model): N Ruby threads take requests off the native dispatch
  # queue and run the app. A thread keeps the GVL while requests are queued and releases
  # it only to wait (inside `next_request`).
  class ThreadPool
    def initialize(native, runner, size)
      @native = native
      @runner = runner
      @threads = Array.new(size) { |i| spawn(i) }
    end

    def join
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
      while @native.running?
        request = @native.next_request
        @runner.call(request) if request
      end
    end
  end
end
