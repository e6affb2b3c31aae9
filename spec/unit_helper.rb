# frozen_string_literal: true

# The unit tier: Ruby parts that need no server and no native extension (option parsing,
# the config DSL, configuration, deferrables, Reactor#call on a real EventMachine reactor,
# the exchange state machine against a fake native request). It runs in seconds, before
# the black-box suite (script/test).
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "lunar/version"
require "timeout"
require "tmpdir"

require_relative "scratch_dirs"
Dir[File.join(__dir__, "unit", "support", "*.rb")].each { |f| require f }

RSpec.configure do |config|
  config.order = :defined
  # For the unit examples only: a bare `rspec` loads both tiers, and this hook would
  # otherwise cut the black-box ones (a browser spec boots Chromium) at 10 s too.
  config.around(file_path: %r{/spec/unit/}) { |example| Timeout.timeout(10) { example.run } }
end
