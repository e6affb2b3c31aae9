# frozen_string_literal: true

# A stand-in for Lunar::Native::Request with the same answers, recording what the exchange
# asked of it: the exchange's state machine is tested here without sockets.
class FakeRequest
  attr_reader :id, :responses, :writer, :closed

  def initialize(id = 1, open: true)
    @id = id
    @open = open
    @responses = []
    @writer = nil
    @closed = false
  end

  def answered? = !@responses.empty? || !@writer.nil? || @closed
  def open? = @open && !answered?
  def client_left! = @open = false

  def respond(status, headers, body)
    return false if answered?

    @responses << [status, headers, body]
    @open
  end

  def respond_file(status, headers, path) = respond(status, headers, File.read(path))

  def stream(status, headers)
    return if answered?

    @responses << [status, headers, :stream]
    @writer = FakeWriter.new(@open)
  end

  def close_connection
    @closed = true
  end

  # The app answers later: the native side stops holding a half-closed client's end of input.
  def answering_later = @answering_later = true
  def answering_later? = @answering_later == true

  def hijack = nil
  def upgrade(_status, _headers) = nil

  # The writer of a streamed body: `write` queues (false once the client is gone).
  class FakeWriter
    attr_reader :chunks, :state

    def initialize(open)
      @open = open
      @chunks = []
      @state = :open
    end

    def write(chunk, _wait = nil)
      return false unless @open && @state == :open

      @chunks << chunk
      true
    end

    def try_write(chunk) = write(chunk)
    def closed? = @state != :open || !@open

    def close
      @state = :closed if @state == :open
    end

    def abort
      @state = :aborted if @state == :open
    end
  end
end
