# frozen_string_literal: true

require "spec_helper"
require "rack/lint"

# The same app, wrapped in Rack::Lint, under whichever Rack this run loaded (2.2 or 3.1).
RSpec.describe "Rack::Lint (Rack #{Rack.release})" do
  let(:errors) { Queue.new }
  let(:lint_app) do
    inner = lambda do |env|
      case env["PATH_INFO"]
      when "/post" then [200, { "content-type" => "text/plain" }, [env["rack.input"].read.upcase]]
      when "/stream" then [200, { "content-type" => "text/plain" }, %w[a b c].each]
      when "/empty" then [204, {}, []]
      else [200, { "content-type" => "text/plain", "content-length" => "5" }, ["hello"]]
      end
    end
    linted = Rack::Lint.new(inner)
    lambda do |env|
      linted.call(env)
    rescue Exception => e # rubocop:disable Lint/RescueException
      errors << e
      raise
    end
  end

  it "passes for GET, POST, HEAD, streamed and empty responses" do
    server = serve(lint_app)
    http(server) do |h|
      expect(h.get("/").body).to eq("hello")
      expect(h.post("/post", "body").body).to eq("BODY")
      expect(h.head("/").body).to be_nil
      expect(h.get("/stream").body).to eq("abc")
      expect(h.get("/empty").code).to eq("204")
      expect(h.get("/q?x=%20y").code).to eq("200")
    end
    raw(server, "GET / HTTP/1.0\r\n\r\n")
    raw(server, "POST /post HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    expect(errors).to be_empty, -> { errors.pop.full_message }
  end
end
