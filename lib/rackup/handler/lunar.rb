# frozen_string_literal: true

# `rackup -s lunar` with rackup 2 (Rack 3) and Sinatra 4 look for this file.
require "lunar/rack_handler"

Rackup::Handler.register("lunar", Lunar::RackHandler) if defined?(Rackup) && Rackup.const_defined?(:Handler)
