# frozen_string_literal: true

require "lunar/async/deferrable"

module Lunar
  # Lunar's own extension for Comet fan-out (plain async.callback apps never need it).
  # Attach held long-polls and open streams to a topic; one `publish`, from any thread,
  # then reaches all of them natively, without a Ruby call per subscriber. async.close still
  # fires for each subscriber when it is answered or leaves.
  #
  #   POLLS = Lunar::Topic.new
  #   get "/poll"    → POLLS.hold(env)                       # answered by the next message
  #   get "/events"  → EVENTS.stream(env)                    # SSE: "data: <message>\n\n"
  #   get "/socket"  → SOCKETS.websocket(env) { |msg| … }    # one WebSocket message per publish
  #   post "/say"    → POLLS.publish(text); EVENTS.publish(text)
  #
  # Needs the async protocol: evented mode, or EventMachine loaded, or `async: true`.
  #
  # Across processes and machines: `Topic.new("chat", redis: "redis://host:6379/0")` (or a
  # name alone when REDIS_URL is set). `publish` from any process (or `redis-cli PUBLISH
  # chat …`) then reaches the subscribers of every Lunar process subscribed to "chat",
  # still without a Ruby call per subscriber; the last `history` messages are kept in Redis
  # (the stream `lunar:history:chat`), and an SSE stream that reconnects with
  # `Last-Event-ID` is sent what it missed first.
  class Topic
    ASYNC_RESPONSE = [-1, {}.freeze, [].freeze].freeze
    SSE_HEADERS = { "content-type" => "text/event-stream", "cache-control" => "no-cache" }.freeze
    TEXT_HEADERS = { "content-type" => "text/plain" }.freeze

    # The body of a topic stream: deferred, so the response lasts until the client leaves
    # (or the server stops); the topic writes into it directly.
    class Body < Deferrable
      def each; end
    end

    HISTORY = 1000

    # `Topic.new`: this process only. `Topic.new(name, redis: url, history: 1000)`: shared
    # through Redis on the channel `name` (`redis:` defaults to REDIS_URL when a name is
    # given; `redis: false` keeps a named topic in-process).
    def initialize(name = nil, redis: nil, history: HISTORY)
      url = redis.nil? ? (name && ENV.fetch("REDIS_URL", nil)) : redis
      url = nil if url == false || url.to_s.empty?
      raise ArgumentError, "a topic shared through Redis needs a name: Lunar::Topic.new(\"chat\", redis: url)" if url && name.nil?

      @name = name&.to_s
      @native = url ? Native::Topic.redis(url.to_s, @name, Integer(history)) : Native::Topic.new
      Topic.registry[self] = true
    end

    class << self
      # Every live topic of this process (weakly held: a topic dropped by the app leaves it).
      def registry = (@registry ||= ObjectSpace::WeakMap.new)

      # This process's topics for the stats: how many, their subscribers, and its Redis
      # links (connected, publishes dropped).
      def stats
        topics = registry.keys
        links = Native::Topic.redis_links
        { topics: topics.size, topic_subscribers: topics.sum(&:size),
          redis_links: links.size, redis_links_up: links.count { |_url, up, _dropped| up },
          redis_dropped_publishes: links.sum { |_url, _up, dropped| dropped } }
      end
    end

    attr_reader :name

    # Whether messages travel through Redis.
    def redis?
      @native.redis?
    end

    # Holds this request until the next `publish`, whose message becomes its body. Returns
    # the async response for the app to return.
    def hold(env, status: 200, headers: TEXT_HEADERS)
      exchange = exchange_for(env)
      exchange.hold
      @native.hold(exchange.request, status, headers)
      ASYNC_RESPONSE
    end

    # Starts a streamed response now; every `publish` is written into it between `prefix`
    # and `suffix` (SSE framing by default). `first` is written once, before any message.
    # On a Redis topic with history, SSE streams get an `id:` line per message (`ids:`),
    # and a request with `Last-Event-ID` is first sent the messages after that id.
    def stream(env, status: 200, headers: SSE_HEADERS, prefix: "data: ", suffix: "\n\n", first: nil, ids: nil)
      exchange = exchange_for(env)
      exchange.respond(status, headers, Body.new)
      writer = exchange.writer
      if writer && !writer.closed?
        ids = redis? && prefix == "data: " if ids.nil?
        @native.attach(writer, [prefix, suffix, ids ? true : false], redis? ? env["HTTP_LAST_EVENT_ID"] : nil, first&.to_s)
      end
      ASYNC_RESPONSE
    end

    # Accepts a WebSocket handshake natively and makes the connection a subscriber: every
    # `publish` reaches it as one text message (binary when not UTF-8), written from Rust;
    # pings are answered natively. The client's messages go to the block, on the reactor
    # (or a worker in threaded mode), one call per message. async.close fires when the
    # client leaves. `first`: messages for this socket alone, sent before any publish.
    # Returns the async response for the app to return.
    # A client speaking another version of the protocol is answered 426 with the one Lunar
    # speaks (RFC 6455 §4.2.2).
    def websocket(env, first: nil, &on_message)
      exchange = exchange_for(env)
      unless env["HTTP_UPGRADE"].to_s.casecmp?("websocket") && env["HTTP_SEC_WEBSOCKET_KEY"]
        raise ArgumentError, "Lunar::Topic#websocket needs a WebSocket handshake (HTTP/1.1 GET with Upgrade: websocket and Sec-WebSocket-Key)"
      end
      return refuse_version(exchange) unless env["HTTP_SEC_WEBSOCKET_VERSION"].to_s.strip == WEBSOCKET_VERSION

      @native.join # subscribed before the client hears anything
      writer = exchange.websocket(env["HTTP_SEC_WEBSOCKET_KEY"], on_message)
      if writer
        Array(first).each { |message| writer.write(message.to_s, nil) }
        @native.attach_socket(writer)
      end
      ASYNC_RESPONSE
    end

    # Delivers `message` to every subscriber; returns how many it reached (in-process), or
    # true once handed to Redis (it is sent as soon as Redis is reachable).
    def publish(message)
      @native.publish(message.to_s)
    end

    # Writes `bytes` unframed to the streams only (an SSE comment keeps proxies from closing
    # idle streams); held long-polls and WebSockets are left out.
    def heartbeat(bytes = ": heartbeat\n\n")
      @native.publish_raw(bytes)
    end

    # Subscribers still connected.
    def size
      @native.size
    end

    private

    WEBSOCKET_VERSION = "13"
    UPGRADE_REQUIRED = [426, { "sec-websocket-version" => WEBSOCKET_VERSION, "content-type" => "text/plain", "connection" => "close" }.freeze,
                        ["WebSocket version 13 only\n"].freeze].freeze

    def refuse_version(exchange)
      exchange.respond(*UPGRADE_REQUIRED)
      ASYNC_RESPONSE
    end

    def exchange_for(env)
      callback = env["async.callback"]
      unless callback.is_a?(AsyncCallback)
        raise ArgumentError, "Lunar::Topic needs the async protocol: run lunar --evented, load EventMachine, " \
                             "or start Lunar::Server with async: true"
      end
      callback.exchange
    end
  end
end
