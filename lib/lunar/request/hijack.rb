# frozen_string_literal: true

require "socket"

module Lunar
  # `env['rack.hijack']`: hands the connection to the app (faye-websocket, ActionCable,
  # websocket-driver, message_bus). The app gets a real IO (a UNIXSocket: one end of a
  # socket pair whose other end the native side relays to the client), reads what the client
  # sends after the request (bytes hyper had already read first), and writes its own response
  # bytes. Offered on every HTTP/1.0 and 1.1 request (`rack.hijack?` is true there): an
  # upgrade request is handed over through hyper's upgrade, any other through hyper giving
  # the connection back once it has "written" an empty response into the muted connection.
  # Not over HTTP/2 (a stream is not a connection). A partial hijack (a `rack.hijack`
  # response header) needs an upgrade request and status 101. Rack 2 also finds the IO in
  # `env['rack.hijack_io']`.
  class Hijack
    HIJACK_IO = "rack.hijack_io"

    def initialize(request, env)
      @request = request
      @env = env
      @io = nil
    end

    def call
      return @io if @io

      fd = @request.hijack or raise IOError, "rack.hijack: the response was already given; the connection can no longer be taken"
      @io = UNIXSocket.for_fd(fd)
      @io.binmode
      @env[HIJACK_IO] = @io
    end

    def hijacked?
      !@io.nil?
    end

    # A partial hijack (a `rack.hijack` response header): Lunar writes the 101 head, then
    # `callable` gets the IO. Raises if the request cannot be taken that way.
    def self.partial(request, status, headers, callable)
      fd = request.upgrade(status, headers) or
        raise IOError, "a rack.hijack response header needs a request that asked for an upgrade (and status 101); " \
                       "take the whole connection with env['rack.hijack'].call, or stream with a Rack 3 body instead"
      io = UNIXSocket.for_fd(fd)
      io.binmode
      callable.call(io)
      true
    end
  end
end
