# frozen_string_literal: true

require "http/2"
require "socket"

# A minimal HTTP/2 client on one connection (ruby-http-2), so one stream can be reset
# while the connection and its other streams live on, and so a client can misbehave:
# shut its windows (`settings_initial_window_size: 0`), PING forever, or leave a request
# body unsent.
class H2Connection
  attr_reader :sock

  def initialize(port, **settings)
    @sock = TCPSocket.new("127.0.0.1", port)
    @conn = HTTP2::Client.new(**settings)
    @conn.on(:frame) { |bytes| write(bytes) }
    @lock = Mutex.new
    @ended = Queue.new
    @reader = Thread.new do
      loop do
        data = @sock.readpartial(16_384)
        @lock.synchronize { @conn << data }
      end
    rescue StandardError
      @ended << true
    end
  end

  # Opens a GET stream; returns [stream, Queue of [:headers, h] / [:data, d] / [:close]].
  def get(path, headers = {})
    request(path, { ":method" => "GET" }.merge(headers), end_stream: true)
  end

  # Opens a request stream and leaves it open: a body that never comes.
  def post_without_body(path)
    request(path, { ":method" => "POST", "content-length" => "10" }, end_stream: false)
  end

  def reset(stream)
    @lock.synchronize { stream.cancel }
  end

  def ping
    @lock.synchronize { @conn.ping("lunar-sp") }
  end

  # PINGs every `interval` seconds until the connection ends or `close`.
  def keep_pinging(interval)
    @pinger = Thread.new do
      loop do
        sleep interval
        ping
      end
    end
  end

  # Whether the server ends the connection within `seconds`.
  def ended_within?(seconds)
    Timeout.timeout(seconds) { @ended.pop }
    true
  rescue Timeout::Error
    false
  end

  def close
    @pinger&.kill
    @sock.close unless @sock.closed?
    @reader.join(1)
  end

  private

  def request(path, headers, end_stream:)
    events = Queue.new
    @lock.synchronize do
      stream = @conn.new_stream
      stream.on(:headers) { |h| events << [:headers, h.to_h] }
      stream.on(:data) { |d| events << [:data, d] }
      stream.on(:close) { |error| events << [:close, error] }
      stream.headers({ ":scheme" => "http", ":authority" => "localhost", ":path" => path }.merge(headers), end_stream: end_stream)
      [stream, events]
    end
  end

  def write(bytes)
    @sock.write(bytes)
  rescue IOError, SystemCallError
    @ended << true
  end
end
