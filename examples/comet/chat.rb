# frozen_string_literal: true

require "json"
require_relative "message_log"

# The Comet demo's state and fan-out, as a Thin user would write it, with Lunar's native
# fan-out as an option per subscriber (?native=1):
# - long-poll subscribers (GET /poll?after=ID) are held with [-1, {}, []], subscribed to an
#   EM::Channel, and answered by async.callback when a message is pushed (or held by a
#   Lunar::Topic);
# - EventSource subscribers (GET /events) get a deferrable body that writes
#   "id: …\ndata: …\n\n" frames (or a Lunar::Topic stream), with a heartbeat comment;
# - WebSocket subscribers (GET /socket?after=ID) are faye-websocket connections, as on Thin
#   (or native Lunar::Topic sockets); each message is one JSON WebSocket message.
# Every message has an id; a poll asks for what came after the last id it saw, and an
# EventSource reconnect sends Last-Event-ID, so no message is lost or shown twice.
#
# With a Redis URL (REDIS_URL) the chat spans processes (`lunar -w 2`) and machines: ids
# and history live in Redis (MessageLog::Redis), the native topics are Redis topics, and
# the Thin-style subscribers of every process hear each message through a Redis channel.
class Chat
  JSON_HEADERS = { "content-type" => "application/json", "cache-control" => "no-cache" }.freeze
  SSE_HEADERS = { "content-type" => "text/event-stream", "cache-control" => "no-cache" }.freeze

  # A deferrable body for an EventSource subscriber: frames are written as they come.
  class EventStream
    include EventMachine::Deferrable

    def each(&block)
      @block = block
    end

    def write(frame)
      @block&.call(frame)
    end
  end

  def initialize(redis_url: nil)
    @polls = EM::Channel.new # held long-polls, each answered once
    @streams = []            # EventStream bodies
    @sockets = [] # faye-websocket connections
    @log = redis_url ? MessageLog::Redis.new(redis_url) { |m| deliver(m) } : MessageLog::Memory.new
    # The chat keeps its own history (ids in its frames), so the topics keep none.
    topic = ->(name) { redis_url ? Lunar::Topic.new("comet:#{name}", redis: redis_url, history: 0) : Lunar::Topic.new }
    @native_polls = topic.call("polls")
    @native_streams = topic.call("streams")
    @native_sockets = topic.call("sockets")
  end

  def publish(text)
    message = @log.add(text.to_s[0, 500]) { |m| deliver(m) }
    @native_polls.publish(JSON.generate([message]))
    @native_streams.publish(sse_frame(message))
    @native_sockets.publish(JSON.generate(message))
    message
  end

  # A message to this process's Thin-style subscribers (on the reactor).
  def deliver(message)
    answer_polls(message)
    frame = sse_frame(message)
    @streams.each { |s| s.write(frame) }
    json = JSON.generate(message)
    @sockets.each { |ws| ws.send(json) }
  end

  def poll(env, after, native:)
    missed = after_id(after)
    return [200, JSON_HEADERS.dup, [JSON.generate(missed)]] unless missed.empty?
    return @native_polls.hold(env, headers: JSON_HEADERS) if native

    callback = env["async.callback"]
    subscription = @polls.subscribe do |body|
      @polls.unsubscribe(subscription)
      callback.call([200, JSON_HEADERS.dup, [body]])
    end
    env["async.close"].callback { @polls.unsubscribe(subscription) }
    [-1, {}, []]
  end

  def events(env, native:)
    if native
      replay = "retry: 1000\n\n#{after_id(env['HTTP_LAST_EVENT_ID']).map { |m| sse_frame(m) }.join}"
      return @native_streams.stream(env, prefix: "", suffix: "", first: replay)
    end

    body = EventStream.new
    replay = add_stream(body, env)
    EM.next_tick do
      env["async.callback"].call([200, SSE_HEADERS.dup, body])
      body.write(replay)
    end
    [-1, {}, []]
  end

  # A WebSocket subscriber: first what it missed (after ID), then every message. Its own
  # messages are published, as if POSTed.
  def socket(env, after, native:)
    missed = after_id(after).map { |m| JSON.generate(m) }
    return @native_sockets.websocket(env, first: missed) { |text| publish(text) } if native

    ws = Faye::WebSocket.new(env)
    ws.on(:open) do
      missed.each { |m| ws.send(m) }
      @sockets << ws
    end
    ws.on(:message) { |event| publish(event.data) }
    ws.on(:close) { @sockets.delete(ws) }
    ws.rack_response
  end

  # Registers anything with `write(frame)` as an EventSource subscriber until its
  # connection ends; returns what to send it first (the reconnect replay).
  def add_stream(stream, env)
    @streams << stream
    env["async.close"].callback { @streams.delete(stream) }
    "retry: 1000\n\n#{after_id(env['HTTP_LAST_EVENT_ID']).map { |m| sse_frame(m) }.join}"
  end

  # Keeps idle EventSource connections open through proxies.
  def heartbeat
    @streams.each { |s| s.write(": heartbeat\n\n") }
    @native_streams.heartbeat
  end

  # This process's subscribers.
  def stats
    { "polls" => @polls.num_subscribers + @native_polls.size, "streams" => @streams.size + @native_streams.size,
      "sockets" => @sockets.size + @native_sockets.size,
      "last_id" => @log.last_id, "worker" => Process.pid, "shared" => @log.shared? }
  end

  private

  def answer_polls(message)
    @polls.push(JSON.generate([message]))
  end

  def after_id(id)
    @log.after(id)
  end

  def sse_frame(message)
    "id: #{message['id']}\ndata: #{JSON.generate(message)}\n\n"
  end
end
