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
    expect(unmasked.receive.first).to eq(:close).or eq(:eof)
    expect(oversized.receive.first).to eq(:close).or eq(:eof)
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
end
