# frozen_string_literal: true

require "spec_helper"

# Lunar::Topic: one native publish to every held long-poll and open stream.
RSpec.describe Lunar::Topic do
  let(:events) { Queue.new }

  def comet_app(polls, streams, events)
    lambda do |env|
      case env["PATH_INFO"]
      when "/poll"
        env["async.close"].callback { events << :poll_closed }
        polls.hold(env)
      when "/events"
        env["async.close"].callback { events << :stream_closed }
        streams.stream(env, first: ": hello\n\n")
      when "/publish"
        text = env["rack.input"].read
        reached = polls.publish(text) + streams.publish(text)
        [200, { "content-length" => reached.to_s.size.to_s }, [reached.to_s]]
      end
    end
  end

  %i[evented threaded].each do |mode|
    it "delivers one publish to held long-polls and SSE streams (#{mode} mode), firing async.close" do
      polls = Lunar::Topic.new
      streams = Lunar::Topic.new
      server = serve(comet_app(polls, streams, events), mode: mode)
      stream = connect(server)
      stream.write("GET /events HTTP/1.1\r\nHost: h\r\n\r\n")
      expect(read_until(stream, /: hello/)).to include("text/event-stream")
      waiters = Array.new(3) { Thread.new { get(server, "/poll") } }
      eventually { polls.size == 3 && streams.size == 1 }

      reached = http(server) { |h| h.post("/publish", "first message").body }
      expect(reached).to eq("4")
      expect(waiters.map { |t| t.value.body }).to eq(["first message"] * 3)
      expect(read_until(stream, /first message/)).to include("data: first message\n\n")
      expect(Array.new(3) { pop_within(events) }).to eq(%i[poll_closed] * 3)

      http(server) { |h| h.post("/publish", "second") }
      expect(read_until(stream, /second/)).to include("data: second\n\n")
      stream.close
      expect(pop_within(events)).to eq(:stream_closed)
      eventually { streams.size.zero? }
    ensure
      stream&.close
    end
  end

  it "answers a long-poll whose client left before the publish with nothing, and forgets it" do
    polls = Lunar::Topic.new
    server = serve(comet_app(polls, Lunar::Topic.new, events), mode: :evented)
    sock = connect(server)
    sock.write("GET /poll HTTP/1.1\r\nHost: h\r\n\r\n")
    eventually { polls.size == 1 }
    sock.close
    expect(pop_within(events)).to eq(:poll_closed)
    expect(polls.publish("nobody")).to eq(0)
    expect(polls.size).to eq(0)
  end

  it "says what it needs when the async protocol is off" do
    topic = Lunar::Topic.new
    log = StringIO.new
    server = serve(mode: :threaded, threads: 1) do |env|
      env["rack.errors"] = log
      env.delete("async.callback")
      topic.hold(env)
    end
    expect(get(server).code).to eq("500")
    expect(log.string).to include("Lunar::Topic needs the async protocol")
  end
end

RSpec.describe "Lunar::Topic and slow readers" do
  it "cuts off a stream that falls more than --stream-buffer behind: the connection closes and async.close fires" do
    events = Queue.new
    topic = Lunar::Topic.new
    server = serve(mode: :evented, stream_buffer: 65_536, timeout: 0) do |env| # only the cut-off may close it
      env["async.close"].callback { events << :closed }
      topic.stream(env)
    end
    sock = connect(server)
    sock.write("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    read_until(sock, /\r\n\r\n/)
    eventually { topic.size == 1 }
    chunk = "x" * 65_536
    # The client reads nothing: kernel buffers fill, then the stream's own buffer.
    eventually(timeout: 20) do
      topic.publish(chunk)
      topic.size.zero?
    end
    expect(pop_within(events, 5)).to eq(:closed)
    sock.read_nonblock(1 << 20, exception: false) while sock.wait_readable(0.2) && !sock.eof?
    expect(sock.eof?).to be(true) # the server closed it
  ensure
    sock&.close
  end
end
