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

  # A frame as a broken or hostile client would write it: any opcode, FIN and RSV bits,
  # masked as clients must (RFC 6455 §5.2). Payloads up to 64 KiB.
  def self.raw_frame(opcode, payload = "".b, fin: true, rsv: 0)
    payload = payload.b
    mask = Random.bytes(4)
    length = payload.bytesize < 126 ? [0x80 | payload.bytesize].pack("C") : [0x80 | 126, payload.bytesize].pack("Cn")
    masked = payload.bytes.each_with_index.map { |byte, i| byte ^ mask.getbyte(i % 4) }.pack("C*")
    [((fin ? 0x80 : 0) | (rsv << 4) | opcode)].pack("C") + length + mask + masked
  end

  def send_raw(opcode, payload = "".b, **flags)
    @sock.write(self.class.raw_frame(opcode, payload, **flags))
  end

  # Sends a Close frame with `code` and `reason`.
  def send_close(code, reason = "")
    send_raw(0x8, [code].pack("n") + reason.b)
  end

  # The server's Close frame as [code, reason] (skipping any messages before it), then
  # expects the connection to end.
  def close_frame(timeout: 5)
    loop do
      frame = next_frame(timeout)
      raise "the connection ended without a Close frame" unless frame
      next unless frame.type == :close

      expect_eof(timeout)
      return [frame.code, frame.data]
    end
  end

  def expect_eof(timeout = 5)
    @sock.wait_readable(timeout) or raise "the server did not close the connection within #{timeout} s"
    data = @sock.read_nonblock(65_536, exception: false)
    raise "expected the end, got #{data.inspect}" unless data.nil? || data == :wait_readable
  rescue Errno::ECONNRESET
    nil
  end

  # The next frame's [type, data]; [:eof, nil] when the server closed the connection.
  def receive(timeout: 5)
    frame = next_frame(timeout)
    frame ? [frame.type, frame.data] : [:eof, nil]
  end

  # The next frame, or nil when the server closed the connection.
  def next_frame(timeout)
    loop do
      frame = @incoming.next
      return frame if frame

      @sock.wait_readable(timeout) or raise "no frame within #{timeout} s"
      data = @sock.read_nonblock(65_536, exception: false)
      return nil if data.nil?

      @incoming << data unless data == :wait_readable
    end
  rescue Errno::ECONNRESET
    nil
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
