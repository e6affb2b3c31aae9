# frozen_string_literal: true

require "spec_helper"
require_relative "fixtures/sinatra_async_apps"

RSpec.describe "Sinatra #{Sinatra::VERSION} async patterns (evented mode)" do
  it "streams an EventSource chat with stream(:keep_open) and drops subscribers that leave" do
    server = serve(LunarChat, mode: :evented)
    sock = connect(server)
    sock.write("GET /stream HTTP/1.1\r\nHost: h\r\nAccept: text/event-stream\r\n\r\n")
    expect(read_until(sock, /\r\n\r\n/)).to start_with("HTTP/1.1 200").and include("text/event-stream")
    eventually { LunarChat.connections.size == 1 }
    http(server) { |h| expect(h.post("/", "msg=hello").code).to eq("204") }
    expect(read_until(sock, /data: hello/)).to include("data: hello\n\n")
    sock.close
    eventually { LunarChat.connections.empty? }
  end

  it "answers a route that throws :async through async.callback, also for HEAD, firing async.close" do
    server = serve(LunarAsyncSinatra, mode: :evented)
    response = get(server, "/async")
    expect([response.code, response.body]).to eq(["200", "async sinatra"])
    expect(pop_within(LunarAsyncSinatra.closed)).to eq("/async")
    head = raw(server, "HEAD /async HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expect(head).to start_with("HTTP/1.1 200").and end_with("\r\n\r\n")
    expect(pop_within(LunarAsyncSinatra.closed)).to eq("/async")
  end

  it "answers 500 when the deferred block raises, and serves the others" do
    server = serve(LunarAsyncSinatra, mode: :evented)
    expect(raw(server, "GET /broken HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")).to start_with("HTTP/1.1 500")
    expect(pop_within(LunarAsyncSinatra.closed)).to eq("/broken")
    expect(get(server, "/async").body).to eq("async sinatra")
  end
end
