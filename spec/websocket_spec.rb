# frozen_string_literal: true

require "spec_helper"

# Lunar::Topic#websocket: the handshake accepted natively, publish written from Rust as
# WebSocket messages, the client's messages to a block, pings answered without Ruby.
RSpec.describe "Lunar::Topic#websocket" do
  let(:events) { Queue.new }
  let(:topic) { Lunar::Topic.new }
  let(:app) do
    topic = self.topic
    events = self.events
    lambda do |env|
      env["async.close"].callback { events << :closed }
      topic.websocket(env, first: ["welcome"]) { |message| events << [:message, message] }
    end
  end

  %i[evented threaded].each do |mode|
    it "delivers one publish to every socket, hands the clients' messages to the block, fires async.close (#{mode})" do
      server = serve(app, mode: mode)
      clients = Array.new(3) { WebSocketClient.new(server.port) }
      expect(clients.map(&:text)).to eq(%w[welcome] * 3) # `first:`, to each socket alone
      eventually { topic.size == 3 }
      expect(topic.publish("to everyone")).to eq(3)
      expect(clients.map(&:text)).to eq(["to everyone"] * 3)
      clients.first.send_frame("from a client")
      expect(pop_within(events)).to eq([:message, "from a client"])
      expect(topic.heartbeat).to eq(0) # raw SSE heartbeats are not for sockets
      clients.first.close
      expect(pop_within(events)).to eq(:closed)
      eventually { topic.size == 2 }
    ensure
      clients&.each(&:close)
    end
  end

  it "answers pings natively and sends non-UTF-8 publishes as binary messages" do
    server = serve(app)
    client = WebSocketClient.new(server.port)
    client.text # welcome
    client.send_frame("are you there", type: :ping)
    expect(client.receive).to eq([:pong, "are you there"])
    eventually { topic.size == 1 }
    topic.publish("\xFF\xFEbinary".b)
    expect(client.receive).to eq([:binary, "\xFF\xFEbinary".b])
  ensure
    client&.close
  end

  it "closes a socket that sends a malformed or oversized frame, and keeps serving the others" do
    server = serve(app, max_ws_message: 1024)
    good = WebSocketClient.new(server.port)
    unmasked = WebSocketClient.new(server.port) # a client frame must be masked (RFC 6455 §5.1)
    oversized = WebSocketClient.new(server.port)
    [good, unmasked, oversized].each(&:text)
    unmasked.sock.write("\x81\x05hello".b)
    oversized.send_frame("x" * 2000)
    expect(unmasked.close_frame.first).to eq(1002) # protocol error
    expect(oversized.close_frame.first).to eq(1009) # too big
    eventually { topic.size == 1 }
    topic.publish("still here")
    expect(good.text).to eq("still here")
  ensure
    [good, unmasked, oversized].compact.each(&:close)
  end

  it "closes a connection whose handshake never completes, after --header-timeout" do
    server = serve(app, header_timeout: 0.3)
    sock = connect(server)
    opened = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    sock.write("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n") # and never the rest
    expect(read_to_eof(sock, within: 5)).to eq("")
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - opened).to be >= 0.25 # closed by the timeout
    eventually { server.live_connections.zero? }
  ensure
    sock&.close
  end

  it "cuts off a socket that stops reading while the server publishes, past --stream-buffer" do
    server = serve(app, stream_buffer: 64 * 1024)
    reader = WebSocketClient.new(server.port)
    stalled = WebSocketClient.new(server.port)
    [reader, stalled].each(&:text)
    eventually { topic.size == 2 }
    big = "y" * 100_000
    200.times do # 20 MB: more than the kernel's socket buffers hold for the stalled one
      topic.publish(big)
      reader.text # the reader keeps up
      break if topic.size == 1
    end
    eventually { topic.size == 1 } # the stalled one was cut off; the reader goes on
    expect(pop_within(events)).to eq(:closed)
    topic.publish("after the cut")
    expect(reader.text).to eq("after the cut")
  ensure
    [reader, stalled].compact.each(&:close)
  end

  it "survives 1,000 clients closing at once" do
    server = serve(app)
    clients = Array.new(1000) { WebSocketClient.new(server.port) }
    eventually(timeout: 20) { topic.size == 1000 }
    clients.each(&:close)
    eventually(timeout: 20) { topic.size.zero? && server.pending_async.zero? }
    expect(Array.new(1000) { pop_within(events) }.count(:closed)).to eq(1000)
    expect(WebSocketClient.new(server.port).text).to eq("welcome") # and serves on
  ensure
    clients&.each(&:close)
  end

  describe "the protocol to the end (RFC 6455)" do
    def client(server)
      WebSocketClient.new(server.port).tap(&:text) # past `first:`
    end

    # Writes `bytes` again and again, reading nothing, until the server closes the
    # connection (then `[written, true]`) or 20 s pass (`[written, false]`).
    def flood(sock, bytes)
      written = 0
      pending = bytes
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 20
      while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
        n = sock.write_nonblock(pending, exception: false)
        next sock.wait_writable(1) if n == :wait_writable

        written += n
        pending = n == pending.bytesize ? bytes : pending.byteslice(n..) # whole frames only
      end
      [written, false]
    rescue Errno::EPIPE, Errno::ECONNRESET
      [written, true]
    end

    it "answers a Close with a Close echoing its code, then closes" do
      server = serve(app)
      socket = client(server)
      socket.send_close(1000, "bye")
      expect(socket.close_frame).to eq([1000, "bye"])
      expect(pop_within(events)).to eq(:closed)
    ensure
      socket&.close
    end

    {
      "a text message that is not UTF-8" => [[0x1, "\xC3\x28".b], 1007],
      "a reserved opcode" => [[0x3, "x"], 1002],
      "a reserved bit" => [[0x1, "x", { rsv: 0b100 }], 1002],
      "a fragmented ping" => [[0x9, "x", { fin: false }], 1002],
      "a continuation with nothing to continue" => [[0x0, "x"], 1002],
      "a Close with a code no one may send" => [[0x8, [1005].pack("n")], 1002],
    }.each do |what, ((opcode, payload, flags), code)|
      it "fails the connection with #{code} on #{what}, and serves the others" do
        server = serve(app)
        bad = client(server)
        good = client(server)
        bad.send_raw(opcode, payload, **(flags || {}))
        expect(bad.close_frame.first).to eq(code)
        eventually { topic.size == 1 }
        topic.publish("still here")
        expect(good.text).to eq("still here")
      ensure
        [bad, good].compact.each(&:close)
      end
    end

    it "refuses an unsupported version with 426 and the one it speaks" do
      server = serve(app)
      answer = raw_until_close(server, "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" \
                                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n")
      expect(answer).to start_with("HTTP/1.1 426").and match(/^Sec-Websocket-Version: 13\r$/i)
    end

    it "stops reading a client that pings and never reads, then cuts it off; the others go on" do
      server = serve(app, write_timeout: 0.5)
      flooder = client(server)
      good = client(server)
      written, cut = flood(flooder.sock, WebSocketClient.raw_frame(0x9, "p" * 125) * 64)
      expect(cut).to be(true)
      expect(written).to be < 64 * 1024 * 1024 # it stopped reading long before 64 MiB of pings
      eventually { topic.size == 1 }
      topic.publish("unaffected")
      expect(good.text).to eq("unaffected")
    ensure
      [flooder, good].compact.each(&:close)
    end
  end
end
