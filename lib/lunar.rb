# frozen_string_literal: true

require "json"
require "lunar/version"
require "lunar/lunar" # the native core (ext/lunar), built by `rake compile` or `gem install`

# Lunar: a Rack server whose sockets and HTTP live in Rust (hyper on tokio) and whose Ruby
# threads only ever run Ruby. lib/lunar's folders follow its layers, as ext/lunar/src's do:
# - process/: how a Lunar starts and runs (CLI, options and config files, the launcher,
#   single and cluster mode, signals, logging, the control app);
# - request/: a request's way through Ruby (the server, the Rack env, calling the app, the
#   response and its body, hijacking);
# - async/: Thin's async protocol (async.callback, deferrables, the EventMachine reactor)
#   and the native fan-out (Topic).
module Lunar
  autoload :CLI, "lunar/process/cli"
  autoload :Configuration, "lunar/process/configuration"
  autoload :Launcher, "lunar/process/launcher"
  autoload :Log, "lunar/process/log"
  autoload :Options, "lunar/process/options"
  autoload :Single, "lunar/process/single"
  autoload :Cluster, "lunar/process/cluster"
  autoload :Stats, "lunar/process/stats"
  autoload :Server, "lunar/request/server"
  autoload :RackHandler, "lunar/rack_handler"
  autoload :Topic, "lunar/async/topic"

  # This process's stats (a single server's, a cluster master's or a worker's) as JSON, as
  # `Puma.stats` gives them; `stats_hash` as a Hash. See Stats.
  def self.stats = JSON.generate(stats_hash)
  def self.stats_hash = Stats.of_this_process
end
