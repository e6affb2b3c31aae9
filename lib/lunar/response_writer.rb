# frozen_string_literal: true

require "lunar/stream"

module Lunar
  # Hands a Rack response (status, headers, body) to the native request, choosing the
  # cheapest body path: `to_ary` (one write), `to_path` (tokio reads the file), `each`
  # (chunks leave as they are yielded), or a Rack 3 streaming body `call(stream)`.
  # `body.close` is always called.
  module ResponseWriter
    module_function

    def write(request, env, status, headers, body)
      status = status.to_i
      if body.respond_to?(:to_ary) && (parts = body.to_ary)
        request.respond(status, headers, parts)
      elsif body.respond_to?(:to_path) && File.file?(path = body.to_path)
        request.respond_file(status, headers, path)
      elsif body.respond_to?(:each)
        stream_each(request, status, headers, body)
      elsif body.respond_to?(:call)
        writer = request.stream(status, headers)
        body.call(Stream.new(writer, env["rack.input"])) if writer
      else
        request.respond(status, headers, nil)
      end
    ensure
      body.close if body.respond_to?(:close)
    end

    # Each chunk leaves as soon as it is yielded. Once the client is gone, iteration stops
    # (so an endless generator does not run on for nobody). If `each` raises, the response
    # is aborted: the connection closes instead of the body looking complete.
    def stream_each(request, status, headers, body)
      writer = request.stream(status, headers)
      return unless writer

      body.each { |chunk| break unless writer.write(chunk) }
      writer.close
    ensure
      writer&.abort unless writer&.closed?
    end
  end
end
