# frozen_string_literal: true

require "unit_helper"
require "stringio"
require "lunar/process/log"
require "lunar/request/access_log"

# The access log on real files: a disk that is full (/dev/full), then, after the HUP that
# reopens it, a file that takes the lines again.
RSpec.describe Lunar::AccessLog do
  let(:env) { { "REQUEST_METHOD" => "GET", "REQUEST_URI" => "/x", "SERVER_PROTOCOL" => "HTTP/1.1", "REMOTE_ADDR" => "127.0.0.1" } }
  let(:path) { File.join(scratch_dir("lunar-access-log"), "access.log") }
  let(:said) { StringIO.new }

  around do |example|
    stderr = $stderr
    $stderr = said
    example.run
  ensure
    $stderr = stderr
  end

  it "drops lines it cannot write, says so once, and says so again once it writes" do
    log = described_class.new(File.open("/dev/full", "a"), path: path)
    3.times { log.log(env, 200, 12) }
    expect(said.string.lines.size).to eq(1)
    expect(said.string).to start_with("lunar: access log #{path}: cannot write (Errno::ENOSPC: No space left on device")
      .and end_with("dropping its lines until it can\n")
    log.reopen # as on HUP: the path, now a file that takes lines
    2.times { log.log(env, 200, 12) }
    expect(said.string.lines.last).to eq("lunar: access log #{path}: writing again\n")
    expect(File.read(path).lines.size).to eq(2)
  end
end
