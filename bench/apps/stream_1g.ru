# frozen_string_literal: true

# One deferrable body streaming 1 GiB in 64 KiB chunks, 16 chunks per reactor tick, for
# bench/async.rb. Content-Length is set, so Thin (which never chunks) keeps the framing too.
CHUNK = ("x" * 65_536).freeze
CHUNKS = 16_384 # 1 GiB

# The deferrable body: `each` keeps the block, a timer feeds it 16 chunks a tick.
class StreamBody
  include EventMachine::Deferrable

  def each(&block)
    @block = block
  end

  def pump(left = CHUNKS)
    16.times do
      return succeed if left.zero?

      @block.call(CHUNK)
      left -= 1
    end
    EM.next_tick { pump(left) }
  end
end

run lambda { |env|
  body = StreamBody.new
  EM.next_tick do
    env["async.callback"].call([200, { "Content-Type" => "application/octet-stream",
                                       "Content-Length" => (CHUNK.bytesize * CHUNKS).to_s }, body])
    body.pump
  end
  [-1, {}, []]
}
