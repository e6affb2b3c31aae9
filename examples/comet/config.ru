# frozen_string_literal: true

# The Comet demo (README's first command): a push chat with long-poll and EventSource
# subscribers, in the style Thin users wrote it. Open http://localhost:9292 in two windows.
#   lunar --evented examples/comet/config.ru
#   REDIS_URL=redis://127.0.0.1:6379/0 lunar --evented -w 2 examples/comet/config.ru   # across workers
require "eventmachine"
require "faye/websocket"
require "lunar"
Faye::WebSocket.load_adapter("thin") if defined?(Thin) # faye's WebSockets on Thin (which has no rack.hijack)
require_relative "chat"

PAGE = File.read(File.join(__dir__, "index.html"))
CHAT = Chat.new(redis_url: ENV.fetch("REDIS_URL", nil))
EM.next_tick { EM.add_periodic_timer(15) { CHAT.heartbeat } }

run lambda { |env|
  query = Rack::Utils.parse_query(env["QUERY_STRING"])
  native = query["native"] == "1"
  case [env["REQUEST_METHOD"], env["PATH_INFO"]]
  when %w[GET /] then [200, { "content-type" => "text/html; charset=utf-8" }, [PAGE.sub("WORKER_PID", Process.pid.to_s)]]
  when %w[GET /poll] then CHAT.poll(env, query["after"], native: native)
  when %w[GET /events] then CHAT.events(env, native: native)
  when %w[GET /socket] then CHAT.socket(env, query["after"], native: native)
  when %w[GET /stats] then [200, Chat::JSON_HEADERS.dup, [JSON.generate(CHAT.stats)]]
  when %w[POST /publish]
    text = Rack::Request.new(env).params["msg"] || env["rack.input"].read
    [200, Chat::JSON_HEADERS.dup, [JSON.generate(CHAT.publish(text))]]
  else [404, { "content-type" => "text/plain" }, ["not found\n"]]
  end
}
