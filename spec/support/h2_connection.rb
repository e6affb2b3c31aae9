# frozen_string_literal: true

require "http/2"
require "socket"

# A minimal HTTP/2 client on one connection (ruby-http-2), so one stream can be reset
# while the connection and its other streams live on.
class H2Connection
  def initialize(port)
    @sock = TCPSocket.new("127.0.0.1", port)
    @conn = HTTP2::Client.new
    @conn.on(:frame) { |bytes| @sock.write(bytes) }
    @lock = Mutex.new
    @reader = Thread.new do
      loop { (data = @sock.readpartial(16_384)) && @lock.synchronize { @conn << data } }
    rescue StandardError
      nil
    end
  end

  # Opens a GET stream; returns [stream, Queue of [:headers, h] / [:data, d] / [:close]].
  def get(path)
    events = Queue.new
    stream = @lock.synchronize { @conn.new_stream }
    stream.on(:headers) { |h| events << [:headers, h.to_h] }
    stream.on(:data) { |d| events << [:data, d] }
    stream.on(:close) { events << [:close] }
    @lock.synchronize do
      stream.headers({ ":scheme" => "http", ":method" => "GET", ":authority" => "localhost", ":path" => path },
                     end_stream: true)
    end
    [stream, events]
  end

  def reset(stream)
    @lock.synchronize { stream.cancel }
  end

  def close
    @sock.close
    @reader.join(1)
  end
end
