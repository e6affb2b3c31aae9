# frozen_string_literal: true

require "socket"

module Lunar
  # `env['rack.hijack']`: hands the connection to the app (faye-websocket, ActionCable,
  # websocket-driver, message_bus). The app gets the client's own socket (a TCPSocket or
  # UNIXSocket) where nothing sits in between; over TLS, or when hyper had read bytes past
  # the request (which must come first), one end of a socket pair the native side relays to
  # the client. It reads what the client sends and writes its own response bytes. Offered
  # on every HTTP/1.0 and 1.1 request (`rack.hijack?` is true there): an upgrade request is
  # handed over through hyper's upgrade, any other through hyper giving the connection back
  # once it has "written" an empty response into the muted connection.
  # Not over HTTP/2 (a stream is not a connection). A partial hijack (a `rack.hijack`
  # response header): a 101 on an upgrade request goes out as hyper's upgrade; any other
  # status as an HTTP/1.0 head with `Connection: close`, the app's bytes being the body
  # (hyper frames what it writes, so a head with Content-Length or Transfer-Encoding is
  # refused). Rack 2 also finds the IO in `env['rack.hijack_io']`.
  class Hijack
    HIJACK_IO = "rack.hijack_io"

    def initialize(request, env)
      @request = request
      @env = env
      @io = nil
    end

    def call
      return @io if @io

      handed = @request.hijack or raise IOError, "rack.hijack: the response was already given; the connection can no longer be taken"
      @io = Hijack.socket(*handed)
      @env[HIJACK_IO] = @io
    end

    def hijacked?
      !@io.nil?
    end

    # A partial hijack (a `rack.hijack` response header): Lunar writes the 101 head, then
    # `callable` gets the IO. Raises if the request cannot be taken that way.
    def self.partial(request, status, headers, callable)
      handed = request.upgrade(status, headers) or
        raise IOError, "a rack.hijack response header with status 101 needs a request that asked for an upgrade"
      callable.call(socket(*handed))
      true
    end

    # The descriptor handed over, as the socket it is: the client's own TCP socket, or a
    # Unix socket (the client's own, or the app's end of the relayed pair).
    def self.socket(descriptor, tcp)
      (tcp ? TCPSocket : UNIXSocket).for_fd(descriptor).tap(&:binmode)
    end
  end
end
