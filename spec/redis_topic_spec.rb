# frozen_string_literal: true

require "spec_helper"

# Lunar::Topic shared through a real redis-server (started by the suite on a free port):
# publishes from this process, from redis-cli, and from other processes reach long-polls,
# SSE streams and WebSockets; history replays to a reconnecting stream; outages pass.
RSpec.describe "Lunar::Topic through Redis" do
  let(:redis) { RedisServer.instance.start }
  let(:channel) { "chat-#{SecureRandom.hex(4)}" } # a channel and history of its own per example
  let(:topic) { Lunar::Topic.new(channel, redis: redis.url) }
  let(:app) do
    topic = self.topic
    lambda do |env|
      case env["PATH_INFO"]
      when "/poll" then topic.hold(env)
      when "/events" then topic.stream(env, first: ": open\n\n")
      when "/socket" then topic.websocket(env)
      when "/publish"
        topic.publish(env["rack.input"].read)
        [200, { "content-type" => "text/plain" }, ["queued"]]
      end
    end
  end

  def open_stream(server)
    sock = connect(server)
    sock.write("GET /events HTTP/1.1\r\nHost: h\r\n\r\n")
    expect(read_until(sock, /: open/)).to include("text/event-stream")
    sock
  end

  # Each SSE event in `text`: [id, data].
  def events_in(text)
    text.scan(/(?:id: (\S+)\n)?data: ([^\n]*)\n\n/)
  end

  it "reaches long-polls, SSE streams and WebSockets, from publish and from redis-cli PUBLISH" do
    server = serve(app, mode: :evented)
    poll = Thread.new { get(server, "/poll").body }
    stream = open_stream(server)
    socket = WebSocketClient.new(server.port, "/socket")
    eventually { topic.size == 3 }

    http(server) { |h| h.post("/publish", "one") }
    expect(poll.value).to eq("one")
    expect(socket.text).to eq("one")
    id, data = events_in(read_until(stream, /data: one/)).last
    expect(data).to eq("one")
    expect(id).to match(/\A\d+-\d+\z/) # its place in the history

    expect(redis.cli("PUBLISH", channel, "from redis-cli").to_i).to eq(1) # one Lunar process subscribed
    expect(socket.text).to eq("from redis-cli")
    expect(events_in(read_until(stream, /from redis-cli/)).last).to eq([nil, "from redis-cli"]) # no history id
  ensure
    stream&.close
    socket&.close
  end

  it "replays what a reconnecting stream missed (Last-Event-ID), in order and once, then goes on live" do
    server = serve(app, mode: :evented)
    stream = open_stream(server)
    eventually { topic.size == 1 }
    http(server) { |h| h.post("/publish", "seen") }
    got = read_until(stream, /data: seen/)
    seen_id, = events_in(got).last
    expect(seen_id).to match(/\A\d+-\d+\z/), "the first stream got #{got.inspect}"
    stream.close
    eventually { topic.size.zero? }

    %w[missed-1 missed-2].each { |m| http(server) { |h| h.post("/publish", m) } }
    eventually { redis.cli("XLEN", "lunar:history:#{channel}").to_i == 3 }
    # Read from its first byte: the replayed events may come in the same read as the head
    # (they did on CI, when a helper reading up to `: open` dropped them).
    again = connect(server)
    again.write("GET /events HTTP/1.1\r\nHost: h\r\nLast-Event-ID: #{seen_id}\r\n\r\n")
    got = read_until(again, /data: missed-2/)
    expect(got).to include("text/event-stream")
    expect(events_in(got).map(&:last)).to eq(%w[missed-1 missed-2]), "after #{seen_id}, the stream got #{got.inspect}"
    http(server) { |h| h.post("/publish", "live") }
    rest = read_until(again, /data: live/)
    expect(events_in(rest).map(&:last)).to eq(%w[live]) # nothing twice
  ensure
    stream&.close
    again&.close
  end

  it "delivers a publish from another Lunar process to every topic on the channel in this one" do
    second = Lunar::Topic.new(channel, redis: redis.url)
    topics = { "/first" => topic, "/second" => second }
    here = serve(->(env) { topics.fetch(env["PATH_INFO"]).hold(env) }, mode: :evented)
    other = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", "--async", fixture("redis_topic.ru")),
                        env: { "REDIS_URL" => redis.url, "TOPIC" => channel })
    other_port = Integer(other.wait_for(%r{listening on tcp://127\.0\.0\.1:(\d+)})[1])
    waiting = [Thread.new { get(here, "/first").body }, Thread.new { get(here, "/second").body }]
    eventually { topic.size == 1 && second.size == 1 }
    Net::HTTP.post(URI("http://127.0.0.1:#{other_port}/publish"), "to both")
    expect(waiting.map(&:value)).to eq(["to both"] * 2)
    # One subscription for this process's two topics; none for a process that only publishes.
    expect(redis.cli("PUBSUB", "NUMSUB", channel).lines.last.to_i).to eq(1)
  end

  it "keeps at most `history` messages" do
    small = Lunar::Topic.new(channel, redis: redis.url, history: 5)
    server = serve(->(env) { small.publish(env["QUERY_STRING"]) && [200, {}, ["ok"]] })
    200.times { |i| get(server, "/?#{i}") }
    eventually { redis.cli("XREVRANGE", "lunar:history:#{channel}", "+", "-", "COUNT", "1").lines.last&.strip == "199" }
    expect(redis.cli("XLEN", "lunar:history:#{channel}").to_i).to be_between(5, 120) # MAXLEN ~ trims by whole nodes
  end

  it "survives Redis being killed and restarted: streams stay open, publishes made meanwhile arrive, then live ones" do
    lunar = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", "--async", fixture("redis_topic.ru")),
                        env: { "REDIS_URL" => redis.url, "TOPIC" => channel })
    port = Integer(lunar.wait_for(%r{listening on tcp://127\.0\.0\.1:(\d+)})[1])
    stream = TCPSocket.new("127.0.0.1", port)
    stream.write("GET /events HTTP/1.1\r\nHost: h\r\n\r\n")
    read_until(stream, /held by/)
    publish = ->(text) { Net::HTTP.post(URI("http://127.0.0.1:#{port}/publish"), text).code }
    expect(publish.call("before")).to eq("200")
    expect(read_until(stream, /data: before/)).to include("data: before")

    redis.kill
    lunar.wait_for(/Redis .* connection lost/)
    expect(publish.call("during the outage")).to eq("200") # queued, not refused
    redis.start
    lunar.wait_for(/Redis .* connected again, 1 topic\(s\) resubscribed/, timeout: 20)
    expect(read_until(stream, /data: during the outage/, timeout: 10)).to include("data: during the outage")
    expect(publish.call("after")).to eq("200")
    rest = read_until(stream, /data: after/)
    expect(rest).to include("data: after")
    expect(rest).not_to include("during the outage") # sent once, not again after the reconnection
  ensure
    stream&.close
    redis.start
  end

  it "spans the workers of a cluster: a publish on one worker reaches subscribers held by the other" do
    lunar = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", "--async", "-w", "2", fixture("redis_topic.ru")),
                        env: { "REDIS_URL" => redis.url, "TOPIC" => channel })
    port = Integer(lunar.wait_for(%r{cluster of 2 workers.*listening on tcp://127\.0\.0\.1:(\d+)})[1])
    streams = {}
    eventually(timeout: 20) do # open streams until both workers hold some
      sock = TCPSocket.new("127.0.0.1", port)
      sock.write("GET /events HTTP/1.1\r\nHost: h\r\n\r\n")
      head = read_until(sock, /held by \d+/)
      holder = head[/held by (\d+)/, 1] or raise "no stream: #{head.inspect}"
      (streams[holder] ||= []) << sock
      streams.size == 2
    end
    publisher = Net::HTTP.post(URI("http://127.0.0.1:#{port}/publish"), "across workers").body
    expect(streams.keys).to include(publisher)
    streams.each_value do |socks|
      socks.each { |s| expect(read_until(s, /data: across workers/)).to include("data: across workers") }
    end
  ensure
    streams&.each_value { |socks| socks.each(&:close) }
  end
end
