# frozen_string_literal: true

require "lunar/version"
require "lunar/lunar" # the native core (ext/lunar), built by `rake compile` or `gem install`

# Lunar: a Rack server whose sockets and HTTP live in Rust (hyper on tokio) and whose
# Ruby threads only ever run Ruby. See README.md for the data path.
module Lunar
  autoload :Configuration, "lunar/configuration"
  autoload :Server, "lunar/server"
  autoload :CLI, "lunar/cli"
  autoload :Launcher, "lunar/launcher"
  autoload :RackHandler, "lunar/rack_handler"
  autoload :Topic, "lunar/topic"
end
