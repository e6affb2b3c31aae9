# frozen_string_literal: true

require "socket"
require "websocket" # ruby-websocket: handshake and framing, client side

# A WebSocket client on a TCP socket (RFC 6455, ruby-websocket's framing): the specs' own,
# so that what the server sends is read frame by frame.
class WebSocketClient
  attr_reader :sock

  def initialize(port, path = "/")
    @sock = TCPSocket.new("127.0.0.1", port)
    @handshake = WebSocket::Handshake::Client.new(url: "ws://127.0.0.1:#{port}#{path}")
    @sock.write(@handshake.to_s)
    @handshake << read_some until @handshake.finished?
    raise "bad handshake" unless @handshake.valid?

    @incoming = WebSocket::Frame::Incoming::Client.new(version: 13)
    @incoming << @handshake.leftovers if @handshake.leftovers
  end

  def send_frame(data, type: :text)
    @sock.write(WebSocket::Frame::Outgoing::Client.new(version: 13, data: data, type: type).to_s)
  end

  # The next frame's [type, data]; [:eof, nil] when the server closed the connection.
  def receive(timeout: 5)
    loop do
      frame = @incoming.next
      return [frame.type, frame.data] if frame

      @sock.wait_readable(timeout) or raise "no frame within #{timeout} s"
      data = @sock.read_nonblock(65_536, exception: false)
      return [:eof, nil] if data.nil?

      @incoming << data unless data == :wait_readable
    end
  rescue Errno::ECONNRESET
    [:eof, nil]
  end

  def text
    type, data = receive
    type == :text ? data : raise("expected a text message, got #{type}")
  end

  def read_some
    @sock.wait_readable(5) or raise "no data within 5 s"
    @sock.readpartial(16_384)
  end

  def close
    @sock.close unless @sock.closed?
  end
end
