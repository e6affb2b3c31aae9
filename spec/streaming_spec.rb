# frozen_string_literal: true

require "spec_helper"

RSpec.describe "streamed bodies" do
  # A body whose each yields one chunk per item pushed to `gate`, so the test decides when
  # the app produces the next chunk: a chunk must reach the client before the next exists.
  def gated_body(gate)
    next_chunk = -> { pop_within(gate, 10) }
    Class.new do
      define_method(:each) do |&blk|
        while (chunk = next_chunk.call)
          blk.call(chunk)
        end
      end
    end.new
  end

  it "sends each chunk as soon as it is yielded, chunked on HTTP/1.1" do
    gate = Queue.new
    server = serve { [200, { "content-type" => "text/plain" }, gated_body(gate)] }
    sock = connect(server)
    sock.write("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    gate << "first-chunk"
    head = read_until(sock, /first-chunk/)
    expect(head).to include("Transfer-Encoding: chunked").and include("first-chunk")
    gate << "second" << nil
    expect(read_until(sock, /0\r\n\r\n/)).to include("second")
    sock.write("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n") # connection still usable
    gate << "again" << nil
    expect(read_all(sock)).to include("again")
  ensure
    sock&.close
  end

  # Large frozen chunks are lent to the connection, not copied (ext/lunar/src/ruby/lent.rs):
  # the String (and the String whose buffer it shares, for a slice) must stay alive and in
  # place while its bytes wait for the client, even when nothing else refers to it and GC
  # runs and compacts meanwhile.
  it "delivers large frozen chunks intact when GC compacts while the client has not read them" do
    chunk = ->(i) { format("%07d\n", i) * 8192 } # 64 KiB, different for each i
    collected = Queue.new
    body = Object.new
    body.define_singleton_method(:each) do |&blk|
      128.times do |i| # 8 MiB: more than the socket buffers hold; odd chunks share a larger String's buffer
        blk.call(i.odd? ? (format("%07d\n", i) * 16_384)[65_536, 65_536].freeze : chunk.call(i).freeze)
      end
      GC.start
      GC.compact
      collected << true
    end
    server = serve(stream_buffer: 16 * (1024**2), connection_buffer: 16 * (1024**2)) { [200, {}, body] }
    sock = Socket.new(:INET, :STREAM)
    sock.setsockopt(Socket::SOL_SOCKET, Socket::SO_RCVBUF, 16_384)
    sock.connect(Socket.sockaddr_in(server.port, "127.0.0.1"))
    sock.write("GET / HTTP/1.0\r\n\r\n")
    expect(pop_within(collected)).to be(true) # nothing read yet: megabytes still queued
    body_text = read_all(sock).split("\r\n\r\n", 2).last
    expect(body_text.bytesize).to eq(128 * 65_536)
    expect(body_text == 128.times.map(&chunk).join).to be(true)
  ensure
    sock&.close
  end

  it "close-delimits a streamed body on HTTP/1.0" do
    server = serve { [200, {}, %w[a b c].each] }
    text = raw(server, "GET / HTTP/1.0\r\n\r\n")
    expect(text).not_to match(/Transfer-Encoding/i)
    expect(text).to end_with("\r\n\r\nabc")
  end

  it "stops iterating once the client has gone, and closes the body" do
    closed = Queue.new
    produced = 0
    endless = Object.new
    endless.define_singleton_method(:each) do |&blk|
      loop do
        produced += 1
        blk.call("tick\n" * 1000)
      end
    end
    endless.define_singleton_method(:close) { closed << true }
    server = serve(stream_buffer: 16_384) { [200, {}, endless] }
    sock = connect(server)
    sock.write("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    read_until(sock, /tick/)
    sock.close
    expect(pop_within(closed)).to be(true)
  end

  it "supports Rack 3 streaming bodies (call(stream))" do
    server = serve do
      body = proc do |stream|
        stream.write("one,")
        stream << "two"
        stream.close
      end
      [200, { "content-type" => "text/plain" }, body]
    end
    expect(get(server).body).to eq("one,two")
  end
end
