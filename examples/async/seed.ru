# The seed of Lunar: the AsyncApp + DeferrableBody from "Async Response in Thin"
# (thin-async-response.txt), as published, with the lines the post elided restored and
# `run AsyncApp.new` added. No require of its own: `lunar --evented` (like `thin start`)
# loads EventMachine before this file.
#
#   lunar --evented examples/async/seed.ru
#   curl -N localhost:9292/     # the head at once, "Woah, async!" a second later

class AsyncApp
  AsyncResponse = [-1, {}, []].freeze
  def call(env)
    body = DeferrableBody.new
    # Get the headers out there asap, let the client know we're alive...
    EM.next_tick { env['async.callback'].call [200, {'Content-Type' => 'text/plain'}, body] }
    # Semi-emulate a long db request, instead of a timer, in reality we'd be
    # waiting for the response data. Whilst this happens, other connections
    # can be serviced.
    # This could be any callback based thing though, a deferrable waiting on
    # IO data, a db request, an http request, an smtp send, whatever.
    EM.add_timer(1) do
      body.call ["Woah, async!\n"]
      EM.next_tick do
        # This could actually happen any time, you could spawn off to new
        # threads, pause as a good looking lady walks by, whatever.
        # Just shows off how we can defer chunks of data in the body, you can
        # even call this many times.
        body.call ["Cheers then!"]
        body.succeed
      end
    end
    AsyncResponse # Tells Thin to not close the connection and continue it's work on other request
  end
end

class DeferrableBody
  include EventMachine::Deferrable

  def call(body)
    body.each do |chunk|
      @body_callback.call(chunk)
    end
  end

  def each(&blk)
    @body_callback = blk
  end
end

run AsyncApp.new
