# frozen_string_literal: true

# 1 GiB from a plain `each` body in 64 KiB chunks, for bench/perf.rb (Lunar threaded vs
# Puma). Content-Length is set, so every server sends it unchunked.
CHUNK = ("x" * 65_536).freeze
CHUNKS = 16_384

# The body: nothing but `each`.
class EachGiB
  def each
    CHUNKS.times { yield CHUNK }
  end
end

HEADERS = { "content-type" => "application/octet-stream", "content-length" => (CHUNK.bytesize * CHUNKS).to_s }.freeze

run ->(_env) { [200, HEADERS.dup, EachGiB.new] }
