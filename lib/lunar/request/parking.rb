# frozen_string_literal: true

module Lunar
  # Streamed bodies that wait for a slow client without holding a thread.
  #
  # An `each` (or Rack 3 `call(stream)`) body is written inside a Fiber. When its client has
  # not read what is queued (`--stream-buffer`), the Fiber parks and the thread goes back to
  # other requests; a tokio task watches the stream and hands the body's token back through
  # this thread's inbox once there is room, the client is gone, or it read nothing for
  # `--write-timeout` (then it is cut off first). A Fiber can only be resumed by the thread
  # that made it, so every worker thread, and the reactor in evented mode, has its own.
  class Parking
    FIBER_KEY = :__lunar_parking # fiber-local: set inside parking fibers only

    # The Parking whose Fiber is running, or nil (then a write waits in place).
    def self.current
      Thread.current[FIBER_KEY]
    end

    def initialize(native, write_timeout)
      @inbox = native.new_inbox # belongs to the calling thread
      @write_timeout = write_timeout.to_f
      @parked = {}
      @next_token = 0
    end

    attr_reader :inbox

    # Runs the block in a Fiber that may park; returns when it finished or parked. The
    # thread's fiber-locals are copied in, so a body sees what the app set in `call`.
    def run(&block)
      locals = inherited_locals
      fiber = Fiber.new do
        locals&.each { |key, value| Thread.current[key] = value }
        Thread.current[FIBER_KEY] = self
        block.call
      end
      fiber.resume
    end

    # Writes `chunk`, parking the running Fiber while it does not fit. False once the client
    # is gone (or was cut off).
    def write(writer, chunk)
      loop do
        sent = writer.try_write(chunk)
        return sent unless sent.nil?

        token = (@next_token += 1)
        @parked[token] = Fiber.current
        writer.park(@inbox, token, chunk.bytesize, @write_timeout)
        Fiber.yield
      end
    end

    # Resumes the bodies whose tokens arrived (the thread's loop calls this).
    def resume_ready
      @inbox.take.each { |token| @parked.delete(token)&.resume }
    end

    def parked
      @parked.size
    end

    private

    def inherited_locals
      keys = Thread.current.keys
      keys.map { |key| [key, Thread.current[key]] } unless keys.empty?
    end
  end
end
