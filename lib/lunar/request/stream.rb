# frozen_string_literal: true

module Lunar
  # The stream a Rack 3 streaming body (`body.call(stream)`) writes to. Closing it ends the
  # response; the body may keep it and write from another thread.
  class Stream
    # `wait`: how long a write may wait for a slow client (nil: as long as it is connected).
    # `exchange`: counts the bytes written, for the access log.
    def initialize(writer, input, wait = nil, exchange = nil)
      @writer = writer
      @input = input
      @wait = wait
      @exchange = exchange
    end

    def write(data)
      data = data.to_s
      @exchange&.sent(data.bytesize) if ResponseWriter.write_chunk(@writer, data, @wait)
      data.bytesize
    end

    def <<(data)
      write(data)
      self
    end

    def read(*args)
      @input&.read(*args)
    end

    def flush
      self
    end

    def close_read
      nil
    end

    def close_write
      @writer.close
    end
    alias close close_write

    def closed?
      @writer.closed?
    end
  end
end
