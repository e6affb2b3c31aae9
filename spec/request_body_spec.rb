# frozen_string_literal: true

require "spec_helper"

RSpec.describe "request bodies (rack.input)" do
  let(:seen) { [] }

  it "is binary and rewindable" do
    server = serve do |env|
      input = env["rack.input"]
      first = input.read
      input.rewind
      again = input.read
      seen << [first, again, input.external_encoding]
      [200, {}, ["ok"]]
    end
    http(server) { |h| h.post("/", "caf\xC3\xA9".b) }
    expect(seen.last).to eq(["caf\xC3\xA9".b, "caf\xC3\xA9".b, Encoding::BINARY])
  end

  it "is empty but present for a GET" do
    server = serve(recording_app(seen))
    get(server)
    expect(seen.last["lunar.test.body"]).to eq("")
  end

  it "de-chunks a chunked request body and gives no CONTENT_LENGTH" do
    server = serve(recording_app(seen))
    raw(server, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" \
                "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    expect(seen.last["lunar.test.body"]).to eq("hello world")
    expect(seen.last).not_to have_key("CONTENT_LENGTH")
  end

  it "spools a body over the threshold to a temp file, still rewindable" do
    server = serve(spool_threshold: 1024) do |env|
      input = env["rack.input"]
      seen << [input.class, input.read.bytesize, (input.rewind; input.read(5))]
      [200, {}, ["ok"]]
    end
    body = "x" * 300_000
    response = http(server) { |h| h.post("/", body) }
    expect(response.body).to eq("ok")
    expect(seen.last).to eq([File, 300_000, "xxxxx"])
  end
end
