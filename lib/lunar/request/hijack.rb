# frozen_string_literal: true

require "socket"

module Lunar
  # `env['rack.hijack']`: hands the connection to the app (faye-websocket, ActionCable,
  # websocket-driver). The app gets a real IO (a UNIXSocket: one end of a socket pair whose
  # other end the native side relays to the client, through hyper's upgrade), reads what the
  # client sends after the request head, and writes its own response bytes. Offered on
  # HTTP/1.1 requests that ask for an upgrade (`rack.hijack?` is true there): hyper hands a
  # connection over only through an upgrade. Rack 2 also finds the IO in
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
    # `callable` gets the IO. Returns false if the request could not be taken.
    def self.partial(request, status, headers, callable)
      fd = request.upgrade(status, headers) or return false
      io = UNIXSocket.for_fd(fd)
      io.binmode
      callable.call(io)
      true
    end
  end
end
