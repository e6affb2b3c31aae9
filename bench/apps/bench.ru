# frozen_string_literal: true

# The app every server runs in bench/run.rb (the floor server answers the same routes).
#   /        hello world, Content-Length set by the app
#   /64k     a 64 KiB body
#   /stream  1 MiB as 16 chunks of 64 KiB from `each`, no Content-Length
HELLO = "Hello world\n"
HELLO_HEADERS = { "content-type" => "text/plain", "content-length" => HELLO.bytesize.to_s }.freeze
BIG = ("x" * 65_536).freeze
BIG_HEADERS = { "content-type" => "text/plain", "content-length" => BIG.bytesize.to_s }.freeze
STREAM_HEADERS = { "content-type" => "text/plain" }.freeze

# 1 MiB as 16 chunks of 64 KiB, yielded by `each` (no Content-Length: the server frames it).
class Stream1M
  def each
    16.times { yield BIG }
  end
end

run lambda { |env|
  case env["PATH_INFO"]
  when "/64k" then [200, BIG_HEADERS.dup, [BIG]]
  when "/stream" then [200, STREAM_HEADERS.dup, Stream1M.new]
  else [200, HELLO_HEADERS.dup, [HELLO]]
  end
}
