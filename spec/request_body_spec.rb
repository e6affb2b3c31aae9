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

  # What apps call on Puma's and Thin's empty inputs, beyond what Rack's SPEC asks.
  it "answers eof?, pos, seek, readpartial and binmode on a bodiless request's input, as an IO at its end does" do
    server = serve do |env|
      input = env["rack.input"]
      partial = begin
        input.readpartial(10)
      rescue EOFError
        :eof
      end
      seen << [input.binmode.eof?, input.pos, input.seek(0), partial, input.read]
      [200, {}, ["ok"]]
    end
    get(server)
    expect(seen.last).to eq([true, 0, 0, :eof, ""])
  end

  # As Puma gives it: Rails reads raw_post as read(content_length).
  it "de-chunks a chunked request body and gives its size as CONTENT_LENGTH, without HTTP_TRANSFER_ENCODING" do
    server = serve(recording_app(seen))
    raw(server, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" \
                "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    expect(seen.last.values_at("lunar.test.body", "CONTENT_LENGTH")).to eq(["hello world", "11"])
    expect(seen.last).not_to have_key("HTTP_TRANSFER_ENCODING")
    raw(server, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n")
    expect(seen.last.values_at("lunar.test.body", "CONTENT_LENGTH")).to eq(["", "0"])
    get(server)
    expect(seen.last).not_to have_key("CONTENT_LENGTH")
  end

  it "drops chunk extensions and trailers, and reads the next pipelined request after them" do
    server = serve(recording_app(seen))
    text = raw(server, "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" \
                       "3;name=v\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n" \
                       "GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expect(text.scan(%r{HTTP/1\.1 200}).size).to eq(2)
    expect(seen.map { |e| [e["PATH_INFO"], e["lunar.test.body"]] }).to eq([["/a", "abc"], ["/b", ""]])
    expect(seen.first).not_to have_key("HTTP_X_TRAILER")
  end

  it "answers Expect: 100-continue before the client sends the body" do
    server = serve(recording_app(seen))
    sock = connect(server)
    sock.write("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    expect(read_until(sock, /\r\n\r\n/)).to eq("HTTP/1.1 100 Continue\r\n\r\n")
    sock.write("hello")
    expect(read_until(sock, /\r\n\r\n/)).to start_with("HTTP/1.1 200")
    expect(seen.last["lunar.test.body"]).to eq("hello")
  ensure
    sock&.close
  end

  it "spools a body over the threshold to a temp file, still rewindable" do
    server = serve(spool_threshold: 1024) do |env|
      input = env["rack.input"]
      seen << [input.class, input.read.bytesize, (input.rewind
                                                  input.read(5))]
      [200, {}, ["ok"]]
    end
    body = "x" * 300_000
    response = http(server) { |h| h.post("/", body) }
    expect(response.body).to eq("ok")
    expect(seen.last).to eq([File, 300_000, "xxxxx"])
  end
end
