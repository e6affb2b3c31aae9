# frozen_string_literal: true

# Every spec talks to a real Lunar over real sockets on 127.0.0.1, port 0.
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "lunar"
require "lunar/request/server"
require "net/http"
require "socket"
require "stringio"
# Loaded for the whole run, as in an app that uses it: threaded servers then run the
# reactor beside their workers, and evented specs run the app on it.
require "eventmachine"
require "timeout"
require "tmpdir"

require_relative "scratch_dirs"
Dir[File.join(__dir__, "support", "*.rb")].each { |f| require f }

RSpec.configure do |config|
  config.include ServerHelpers
  config.include ProcessHelpers
  config.before { @servers = [] }
  config.after { @servers.each { |s| s.halt.wait } }
  config.filter_run_excluding(rack: ->(v) { !RackVersion.matches?(v) })
  config.order = :defined
  # A broken feature must fail its example, not hang the suite until CI's limit.
  config.around { |example| Timeout.timeout(90) { example.run } }
end
