# frozen_string_literal: true

# The app bench/abuse.rb attacks: /ping answers at once (the victim other clients use),
# /big is 1 MiB from `to_ary`, /stream 1 MiB as 16 chunks of 64 KiB from `each`, /echo
# reads the request body, /socket is a native WebSocket (Lunar::Topic#websocket).
require "lunar"
BIG = ("x" * (1 << 20)).freeze
CHUNK = ("y" * 65_536).freeze

# 1 MiB in 16 chunks from `each`.
class Sixteen
  def each
    16.times { yield CHUNK }
  end
end

SOCKETS = Lunar::Topic.new

run lambda { |env|
  case env["PATH_INFO"]
  when "/socket" then SOCKETS.websocket(env)
  when "/big" then [200, { "content-type" => "text/plain" }, [BIG]]
  when "/stream" then [200, { "content-type" => "text/plain" }, Sixteen.new]
  when "/echo" then [200, { "content-type" => "text/plain" }, [env["rack.input"].read.bytesize.to_s]]
  else [200, { "content-type" => "text/plain", "content-length" => "4" }, ["pong"]]
  end
}
