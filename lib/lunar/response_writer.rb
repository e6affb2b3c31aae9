# frozen_string_literal: true

require "lunar/stream"

module Lunar
  # Hands a Rack response with an ordinary body to the native request, choosing the cheapest
  # path: `to_ary` (one write), `to_path` (tokio reads the file), `each` (chunks leave as they
  # are yielded), or a Rack 3 streaming body `call(stream)`. Deferrable bodies and the
  # response's end (body.close and the rest) are Exchange's.
  module ResponseWriter
    module_function

    def write(exchange, status, headers, body)
      request = exchange.request
      if body.respond_to?(:to_ary) && (parts = body.to_ary)
        request.respond(status, headers, parts)
      elsif body.respond_to?(:to_path) && File.file?(path = body.to_path)
        request.respond_file(status, headers, path)
      elsif body.respond_to?(:each)
        stream_each(exchange, body)
      elsif body.respond_to?(:call)
        writer = exchange.open_stream
        body.call(Stream.new(writer, exchange.env["rack.input"], exchange.write_wait)) if writer
      else
        request.respond(status, headers, nil)
      end
    end

    # Each chunk leaves as soon as it is yielded. Once the client is gone, iteration stops
    # (an endless generator does not run on for nobody). HEAD gets the head only. If `each`
    # raises, Exchange#fail_with aborts the stream: the connection closes instead of the
    # body looking complete.
    def stream_each(exchange, body)
      writer = exchange.open_stream
      return unless writer
      return writer.close if exchange.head?

      wait = exchange.write_wait # bounded when this is the reactor thread (evented mode)
      body.each { |chunk| break unless writer.write(chunk, wait) }
      writer.close
    end
  end
end
