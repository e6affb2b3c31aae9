# frozen_string_literal: true

require "lunar/request/stream"
require "lunar/request/parking"

module Lunar
  # Hands a Rack response with an ordinary body to the native request, choosing the cheapest
  # path: `to_ary` (one write), `to_path` (tokio reads the file), `each` (chunks leave as they
  # are yielded), or a Rack 3 streaming body `call(stream)`. Streamed bodies run through
  # `Exchange#stream`, which may park them (see Parking). Deferrable bodies and the
  # response's end (body.close and the rest) are Exchange's.
  module ResponseWriter
    module_function

    # Writes the response. Returns true when the body is streamed: then the exchange finishes
    # itself once the stream is over (maybe later, after parking); else the caller finishes.
    # A `to_ary` body that does not fit its connection's budget (HTTP/2 streams waiting on a
    # client that reads slowly) is streamed instead, so that it parks rather than being copied.
    def write(exchange, status, headers, body)
      request = exchange.request
      if (parts = parts_of(body))
        return exchange.stream { stream_each(exchange, parts) } if request.respond(status, headers, parts).nil?

        exchange.sent(parts.sum { |part| text(part).bytesize }) if exchange.counting?
      elsif body.respond_to?(:to_path) && File.file?(path = body.to_path)
        request.respond_file(status, headers, path)
        exchange.sent(File.size(path)) if exchange.counting?
      elsif body.respond_to?(:each)
        return exchange.stream { stream_each(exchange, body) }
      elsif body.respond_to?(:call)
        return exchange.stream { stream_call(exchange, body) }
      elsif bodiless?(exchange, status) # nothing is written: the body is not looked at (Puma)
        request.respond(status, headers, nil)
      else
        raise ArgumentError, "the response body (#{body.class}) has no each, to_ary, to_path or call: Rack needs one"
      end
      false
    end

    # A body's parts when it has them whole: `to_ary`'s, or a String body as it is, which
    # Thin writes (Rack 1's rule; Ruby 1.8's String had `each`).
    def parts_of(body)
      return [body] if body.is_a?(String)

      body.to_ary if body.respond_to?(:to_ary)
    end

    # A chunk as it is written: a String, or anything else's `to_s`, as Thin's EventMachine
    # `send_data` takes it (an Integer or a Symbol yielded by an old Thin app; nil: nothing).
    def text(chunk)
      chunk.is_a?(String) ? chunk : chunk.to_s
    end

    # A response that carries no body whatever the app gave: HEAD, 1xx, 204, 304.
    def bodiless?(exchange, status)
      exchange.head? || status < 200 || status == 204 || status == 304
    end

    # The head goes out with the first chunk, and each chunk as soon as it is yielded. So an
    # `each` that raises before yielding anything still gets a 500; one that raises later
    # has its chunks sent and the connection closed, never a body that looks complete (see
    # Exchange#fail_with). Once the client is gone, iteration stops (an endless generator
    # does not run on for nobody). HEAD gets the head only.
    def stream_each(exchange, body)
      return exchange.open_stream&.close if exchange.head?

      writer = nil
      wait = exchange.write_wait # bounded when this is the reactor thread (evented mode)
      body.each do |chunk|
        chunk = text(chunk)
        writer ||= exchange.open_stream or break
        break unless write_chunk(writer, chunk, wait)

        exchange.sent(chunk.bytesize)
      end
      (writer || exchange.open_stream)&.close
    end

    def stream_call(exchange, body)
      writer = exchange.open_stream
      body.call(Stream.new(writer, exchange.env["rack.input"], exchange.write_wait, exchange)) if writer
    end

    # Inside a parking Fiber a full buffer parks it; elsewhere the write waits (at most
    # `wait` seconds; nil: as long as the client is there).
    def write_chunk(writer, chunk, wait)
      parking = Parking.current
      parking ? parking.write(writer, chunk) : writer.write(chunk, wait)
    end
  end
end
