# frozen_string_literal: true

require "rack"

# The suite runs twice: under Rack 2.2 (Debian bookworm) and under Rack 3.1 (script/rack3-env).
# `rack: 2` / `rack: 3` tags a spec for one of them.
module RackVersion
  def self.major
    Rack.release.to_i
  end

  def self.matches?(wanted)
    Integer(wanted) == major
  end
end
