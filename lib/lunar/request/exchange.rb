# frozen_string_literal: true

require "lunar/request/app_errors"
require "lunar/request/server_context"
require "lunar/request/response_writer"

module Lunar
  # One request and its response: from the app's result, or a later call of
  # env['async.callback'], to the end of the body. It makes sure body.close, async.close and
  # rack.response_finished run exactly once, and knows what to do when the client leaves
  # first. Any Ruby thread may drive it (a worker, the reactor, the app's own thread).
  class Exchange
    ASYNC_CLOSE = "async.close"
    ERROR_HEADERS = ServerContext::ERROR_HEADERS
    ERROR_BODY = ServerContext::ERROR_BODY
    UNAVAILABLE_BODY = ["Service Unavailable\n"].freeze
    DISCARD = proc { |_chunk| }

    attr_reader :request, :env, :writer

    def initialize(request, env, context)
      @request = request
      @env = env
      @context = context
      @state = :new # → :pending (async) → :streaming (deferred body) → :finished
      @responded = false
      @status = @headers = @body = @writer = nil
      @bytes = context.timed? ? 0 : nil # counted for the access log only
    end

    # `bytes` of the body went to the connection (counted when there is an access log).
    def sent(bytes)
      @bytes += bytes if @bytes
    end

    def counting? = !@bytes.nil?

    def id
      @request.id
    end

    def head?
      @env["REQUEST_METHOD"] == "HEAD"
    end

    # True once the exchange no longer needs the thread that called the app.
    def settled?
      @state != :new
    end

    # Whether the client can still receive this response. A request held by a Topic gave
    # its reply slot away; the native side tells us when it ends.
    def connection_open?
      return true if @held

      @writer ? !@writer.closed? : @request.open?
    end

    # A Topic holds this request (its reply slot moves there): pending until published.
    def hold
      @held = true
    end

    # The app answered [-1, …] or threw :async: the answer comes through async.callback
    # (unless it hijacked the connection: then the exchange is over).
    def pend
      return finish if hijacked?
      return if @responded || @state == :finished

      @state = :pending
      register
      # Registered first: a client already gone is then found by the notice this lets come.
      @request.answering_later
    end

    # Writes a Rack response. A deferrable body (callback + errback) ends the response when
    # it succeeds or fails; any other body when its `each` returns. After a hijack there is
    # nothing to write: the connection is the app's (faye-websocket and ActionCable also
    # call async.callback).
    def respond(status, headers, body)
      return finish if hijacked?
      return ignore_second_response if @responded

      @responded = true
      @status = status.to_i
      @headers = headers
      @body = body
      if (callable = RackEnv.partial_hijack(@env, headers))
        Hijack.partial(@request, @status, headers, callable)
        finish
      elsif body.respond_to?(:callback) && body.respond_to?(:errback)
        stream_deferred
      else
        ResponseWriter.write(self, @status, headers, body) || finish
      end
    rescue *APP_ERRORS => e
      fail_with(e)
    end

    # Runs a streamed body's writing, then finishes. Where this thread can park (a worker or
    # the reactor, see Parking), the writing runs in a Fiber that parks on a slow client
    # while the thread serves others: the exchange is registered meanwhile, so a disconnect
    # or a stop still finds it. Returns true.
    def stream(&writing)
      parking = @context.parking
      unless parking
        writing.call
        finish
        return true
      end
      @state = :streaming
      register
      parking.run do
        writing.call
        finish
      rescue *APP_ERRORS => e
        fail_with(e)
      end
      true
    end

    # What env['async.callback'].call(response) does.
    def respond_async(response)
      return close_connection if response.nil?

      status, headers, body = response.to_a
      return if status.to_i == -1

      respond(status, headers, body)
    end

    def close_connection
      @request.close_connection
      finish
    end

    # The app raised: if nothing was sent yet, the answer to an error (the config file's
    # lowlevel_error_handler's, or a 500), else the connection is cut.
    def fail_with(error)
      @context.log_exception(@env, error)
      answer_error(error) unless @request.answered?
      finish(error)
    end

    # The thread running the app is being killed before it answered: answer, never hang.
    def abandon
      @request.respond(503, ERROR_HEADERS, UNAVAILABLE_BODY) unless @request.answered?
      finish
    end

    # The connection ended first (client gone, inactivity timeout, server stop):
    # async.close succeeds, then a failable body fails (so its errbacks run).
    def client_gone
      return if @state == :finished

      fire_async_close
      @body.fail if @body.respond_to?(:fail)
      finish
    rescue *APP_ERRORS => e
      @context.log_exception(@env, e, "while closing after disconnect:")
      finish(e)
    end

    # Ends the exchange once: end the body (or cut it on error), body.close, async.close,
    # rack.response_finished.
    def finish(error = nil)
      return if @state == :finished

      @state = :finished
      error ? @writer&.abort : @writer&.close
      close_body
      @context.registry.delete(id) if @registered
      fire_async_close
      @context.finished(@env, @status, @headers, error, @bytes)
    end

    # How long a write may wait for a slow client on this thread (nil: as long as it takes;
    # bounded on the reactor thread, which every other connection shares).
    def write_wait
      @context.write_wait
    end

    # The stream a body writes to, once the head has been handed to the connection.
    def open_stream
      @writer = @request.stream(@status, @headers)
    end

    # A native WebSocket (Topic#websocket): the handshake goes out, the exchange stays open
    # (registered, so the client leaving fires async.close) and `on_message` gets what the
    # client sends. Returns the writer of the socket's messages, or nil.
    def websocket(key, on_message)
      return if @responded

      @responded = true
      @status = 101
      @on_message = on_message
      @writer = @request.websocket(key, !on_message.nil?)
      @state = :streaming
      register
      @writer
    end

    # A message from the client of a native WebSocket.
    def receive(message)
      @on_message&.call(message)
    rescue *APP_ERRORS => e
      @context.log_exception(@env, e, "a WebSocket message block raised")
    end

    def hijacked?
      hijack = @env[RackEnv::RACK_HIJACK]
      hijack.is_a?(Hijack) && hijack.hijacked?
    end

    private

    # Known to the registry, so a disconnect notice can find this exchange. Once: an async
    # response registers when it pends, and stays registered while its body streams.
    def register
      return if @registered

      @registered = true
      @context.registry.add(self)
    end

    # A deferrable body: the head goes out now (as Thin sends it), `each` receives the block
    # the body keeps for later chunks, and the response ends when the body succeeds or fails.
    # If the client already left, the body still runs, its chunks dropped, so an app that
    # answers late never finds `each` uncalled (the seed's DeferrableBody would raise).
    def stream_deferred
      @state = :streaming unless @state == :finished
      writer = open_stream
      if writer
        writer.close if head? # the head is all a HEAD gets
        register
      end
      @body.each(&(writer && !head? ? chunk_writer : DISCARD))
      # Registered after the app's own callbacks, so those run first.
      @body.callback { body_over }
      @body.errback { body_over }
    end

    # A deferred body succeeded or failed: the exchange ends (or, if the client had already
    # left and the exchange ended then, the late body is closed).
    def body_over
      @state == :finished ? close_body : finish
    end

    # The block a deferrable body keeps and calls later, from any thread (so the wait is
    # decided per write, by the calling thread).
    def chunk_writer
      writer = @writer
      context = @context
      lambda do |chunk|
        chunk = ResponseWriter.text(chunk)
        writer.write(chunk, context.write_wait).tap { |ok| sent(chunk.bytesize) if ok && @bytes }
      end
    end

    # The error's answer, as a complete body (a handler may return any Rack body).
    def answer_error(error)
      status, headers, body = @context.error_response(@env, error)
      parts = body.respond_to?(:to_ary) ? body.to_ary : [].tap { |all| body.each { |chunk| all << chunk.to_s } }
      body.close if body.respond_to?(:close) && !body.equal?(parts)
      @status = status.to_i
      @headers = headers
      @request.respond(@status, headers, parts)
    rescue *APP_ERRORS => e
      @context.log_exception(@env, e, "the error's answer failed:")
      @request.respond(500, ERROR_HEADERS, ERROR_BODY)
    end

    # Once, whoever ends first (the body, or the client leaving).
    def close_body
      return if @body.nil? || @body_closed

      @body_closed = true
      @body.close if @body.respond_to?(:close)
    rescue *APP_ERRORS => e
      @context.log_exception(@env, e, "body.close raised")
    end

    def fire_async_close
      return if @async_closed

      @async_closed = true
      @env[ASYNC_CLOSE]&.succeed
    rescue *APP_ERRORS => e
      @context.log_exception(@env, e, "an async.close callback raised")
    end

    def ignore_second_response
      @context.log_error(@env, "async.callback called again after the response started; ignored (the first response wins)")
    end
  end
end
