# frozen_string_literal: true

# The same Comet demo page with Sinatra: EventSource subscribers are Sinatra's
# stream(:keep_open), the classic Sinatra-on-Thin chat; long-polls and history are Chat's.
#   lunar --evented examples/comet/sinatra.ru
require "eventmachine"
require "faye/websocket"
require "sinatra/base"
require "lunar"
require_relative "chat"

# The Comet demo as a Sinatra app: the same page and transports, on Sinatra's routes.
class SinatraComet < Sinatra::Base
  set :chat, Chat.new(redis_url: ENV.fetch("REDIS_URL", nil))
  set :page, File.read(File.join(__dir__, "index.html"))
  set :logging, false
  set :host_authorization, { permitted_hosts: [] } # Sinatra 4.1: a demo reachable by any name

  # Sinatra's stream object writes with <<; Chat writes frames with write.
  SinatraOut = Struct.new(:out) do
    def write(frame) = out << frame
  end

  get("/") { settings.page.sub("WORKER_PID", Process.pid.to_s) }
  get("/stats") do
    content_type :json
    JSON.generate(settings.chat.stats)
  end
  get("/poll") { settings.chat.poll(env, params["after"], native: params["native"] == "1") }
  get("/socket") { settings.chat.socket(env, params["after"], native: params["native"] == "1") }

  get "/events", provides: "text/event-stream" do
    chat = settings.chat
    stream :keep_open do |out|
      out << chat.add_stream(SinatraOut.new(out), env)
    end
  end

  post "/publish" do
    content_type :json
    JSON.generate(settings.chat.publish(params["msg"] || request.body.read))
  end
end

EM.next_tick { EM.add_periodic_timer(15) { SinatraComet.chat.heartbeat } }
run SinatraComet
