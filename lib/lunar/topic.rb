# frozen_string_literal: true

require "lunar/deferrable"

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
  class Topic
    ASYNC_RESPONSE = [-1, {}.freeze, [].freeze].freeze
    SSE_HEADERS = { "content-type" => "text/event-stream", "cache-control" => "no-cache" }.freeze
    TEXT_HEADERS = { "content-type" => "text/plain" }.freeze

    # The body of a topic stream: deferred, so the response lasts until the client leaves
    # (or the server stops); the topic writes into it directly.
    class Body < Deferrable
      def each; end
    end

    def initialize
      @native = Native::Topic.new
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
    def stream(env, status: 200, headers: SSE_HEADERS, prefix: "data: ", suffix: "\n\n", first: nil)
      exchange = exchange_for(env)
      exchange.respond(status, headers, Body.new)
      writer = exchange.writer
      if writer && !writer.closed?
        writer.write(first, nil) if first
        @native.attach(writer, prefix, suffix)
      end
      ASYNC_RESPONSE
    end

    # Accepts a WebSocket handshake natively and makes the connection a subscriber: every
    # `publish` reaches it as one text message (binary when not UTF-8), written from Rust;
    # pings are answered natively. The client's messages go to the block, on the reactor
    # (or a worker in threaded mode), one call per message. async.close fires when the
    # client leaves. `first`: messages for this socket alone, sent before any publish.
    # Returns the async response for the app to return.
    def websocket(env, first: nil, &on_message)
      exchange = exchange_for(env)
      unless env["rack.hijack?"] && env["HTTP_UPGRADE"].to_s.casecmp?("websocket") && env["HTTP_SEC_WEBSOCKET_KEY"]
        raise ArgumentError, "Lunar::Topic#websocket needs a WebSocket handshake (HTTP/1.1 GET with Upgrade: websocket and Sec-WebSocket-Key)"
      end

      writer = exchange.websocket(env["HTTP_SEC_WEBSOCKET_KEY"], on_message)
      if writer
        Array(first).each { |message| writer.write(message.to_s, nil) }
        @native.attach_socket(writer)
      end
      ASYNC_RESPONSE
    end

    # Delivers `message` to every subscriber; returns how many it reached.
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
