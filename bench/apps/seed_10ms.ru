# The seed's AsyncApp + DeferrableBody (examples/async/seed.ru) with the 1 s timer replaced
# by 10 ms, for bench/async.rb. Needs EventMachine loaded first (lunar --evented, thin start).
# One change besides the timer: `@body_callback&.call`. Under load some clients leave before
# the server calls `each`; the verbatim seed then raises NoMethodError in its timer, which
# kills Thin's whole process (Lunar logs it and goes on). The guard keeps Thin alive so the
# two can be compared.
class AsyncApp
  AsyncResponse = [-1, {}, []].freeze
  def call(env)
    body = DeferrableBody.new
    EM.next_tick { env['async.callback'].call [200, {'Content-Type' => 'text/plain'}, body] }
    EM.add_timer(0.01) do
      body.call ["Woah, async!\n"]
      EM.next_tick do
        body.call ["Cheers then!"]
        body.succeed
      end
    end
    AsyncResponse
  end
end

class DeferrableBody
  include EventMachine::Deferrable

  def call(body)
    body.each { |chunk| @body_callback&.call(chunk) }
  end

  def each(&blk)
    @body_callback = blk
  end
end

run AsyncApp.new
