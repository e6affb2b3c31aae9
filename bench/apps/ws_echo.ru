# frozen_string_literal: true

# A faye-websocket echo server for bench/websocket.rb (Lunar and Puma run it as is; faye
# runs its EventMachine reactor where the server does not).
require "faye/websocket"

run lambda { |env|
  next [200, { "content-type" => "text/plain", "content-length" => "2" }, ["ok"]] unless Faye::WebSocket.websocket?(env)

  ws = Faye::WebSocket.new(env)
  ws.on(:message) { |event| ws.send(event.data) }
  ws.rack_response
}
