# frozen_string_literal: true

require "spec_helper"

RSpec.describe "the Rack env" do
  let(:seen) { [] }
  let(:server) { serve(recording_app(seen)) }

  it "carries the CGI keys as Thin and Puma set them" do
    get(server, "/a%20b/c?x=1&y=%2F", "X-Custom" => "yes")
    env = seen.last
    expect(env).to include(
      "REQUEST_METHOD" => "GET", "SCRIPT_NAME" => "", "PATH_INFO" => "/a%20b/c",
      "REQUEST_PATH" => "/a%20b/c", "QUERY_STRING" => "x=1&y=%2F", "REQUEST_URI" => "/a%20b/c?x=1&y=%2F",
      "SERVER_NAME" => "127.0.0.1", "SERVER_PORT" => server.port.to_s, "SERVER_PROTOCOL" => "HTTP/1.1",
      "HTTP_VERSION" => "HTTP/1.1", "GATEWAY_INTERFACE" => "CGI/1.2", "REMOTE_ADDR" => "127.0.0.1",
      "HTTP_X_CUSTOM" => "yes", "rack.url_scheme" => "http", "rack.multithread" => true,
      "rack.multiprocess" => false, "rack.run_once" => false, "rack.version" => [1, 3]
    )
    expect(env["SERVER_SOFTWARE"]).to start_with("Lunar")
    expect(env["rack.errors"]).to respond_to(:puts, :write, :flush)
    expect(env.values_at("rack.response_finished", "rack.after_reply")).to eq([[], []])
  end

  it "gives QUERY_STRING as an empty string when there is none, and REQUEST_URI as the client wrote it" do
    get(server, "/plain")
    expect(seen.last["QUERY_STRING"]).to eq("")
    raw(server, "GET /q? HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expect(seen.last.values_at("PATH_INFO", "QUERY_STRING", "REQUEST_URI")).to eq(["/q", "", "/q?"])
    raw(server, "GET /q?a=1&b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expect(seen.last.values_at("QUERY_STRING", "REQUEST_URI")).to eq(["a=1&b", "/q?a=1&b"])
  end

  it "takes SERVER_NAME and SERVER_PORT from Host, keeping IPv6 brackets" do
    raw(server, "GET / HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n")
    expect(seen.last.values_at("SERVER_NAME", "SERVER_PORT")).to eq(["[::1]", "8080"])
    raw(server, "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
    expect(seen.last.values_at("SERVER_NAME", "SERVER_PORT")).to eq(["example.com", "80"])
  end

  it "falls back to the bound address without a Host header (HTTP/1.0)" do
    raw(server, "GET / HTTP/1.0\r\n\r\n")
    expect(seen.last.values_at("SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL"))
      .to eq(["127.0.0.1", server.port.to_s, "HTTP/1.0"])
  end

  it "joins repeated headers and keeps content type/length out of HTTP_*" do
    raw(server, "POST /p HTTP/1.1\r\nHost: h\r\nAccept: a\r\nAccept: b\r\n" \
                "Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
    env = seen.last
    expect(env["HTTP_ACCEPT"]).to eq("a, b")
    expect(env).to include("CONTENT_TYPE" => "text/plain", "CONTENT_LENGTH" => "2")
    expect(env.keys).not_to include("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH")
    expect(env["lunar.test.body"]).to eq("hi")
  end

  it "gives names with underscores as Puma does: never over a dashed twin, never the framing ones" do
    raw(server, "POST /p HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: evil\r\nX-Forwarded-For: good\r\n" \
                "X-Real-IP: proxy\r\nX_Real_IP: client\r\nX_Api_Key: k1\r\nX_Api_Key: k2\r\n" \
                "X_Trace-Id: first\r\nX-Trace_Id: second\r\nContent_Type: evil\r\nContent_Length: 9\r\n" \
                "Transfer_Encoding: chunked\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
    env = seen.last
    expect(env.values_at("HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP")).to eq(%w[good proxy])
    expect(env["HTTP_X_API_KEY"]).to eq("k1, k2")
    expect(env["HTTP_X_TRACE_ID"]).to eq("first").or eq("second")
    expect(env.keys).not_to include("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING", "CONTENT_TYPE")
    expect(env.values_at("CONTENT_LENGTH", "lunar.test.body")).to eq(%w[2 hi])
  end

  it "gives an absolute-form target's path and host (its Host header ignored), and OPTIONS * per the Rack version" do
    raw(server, "GET http://example.com:8080/abs?q=1 HTTP/1.1\r\nHost: elsewhere.org\r\nConnection: close\r\n\r\n")
    expect(seen.last.values_at("PATH_INFO", "QUERY_STRING")).to eq(["/abs", "q=1"])
    expect(seen.last.values_at("HTTP_HOST", "SERVER_NAME", "SERVER_PORT")).to eq(["example.com:8080", "example.com", "8080"])
    raw(server, "OPTIONS * HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expected = Gem::Version.new(Rack.release) >= Gem::Version.new("3.1") ? "*" : ""
    expect(seen.last["PATH_INFO"]).to eq(expected)
  end

  it "makes rack.multithread false with one thread" do
    one = serve(recording_app(seen), threads: 1)
    get(one)
    expect(seen.last["rack.multithread"]).to be(false)
  end
end
